# relgate.lib: the setup every built-in package shares, each value with a safe default (a
# runtime error in a policy would block every release, so a missing or mistyped field reads as
# empty instead). Packages import what they use:
#
#   import data.relgate.lib
#   import data.relgate.lib.cfg
#
# and call the helpers as lib.as_list(x), lib.cfg_list(path), lib.non_empty_string(x).
#
# Semantics:
# - cfg: data.relgate.config (the built-in config deep-merged with relgate.yaml), {} if it is
#   not an object.
# - manifest: input.manifest, {} if it is not an object.
# - kind, environment, change_type: the manifest's `kind`, `metadata.environment` and
#   `metadata.change_type` when they are strings, else "".
# - tier_key: metadata.tier as the string key of the config's tier maps ("0".."3"): an integer
#   is formatted, a string kept, anything else "".
# - as_list(x): x when it is an array or set, else [] (regorus raises an error for `some .. in`
#   over a non-collection, e.g. a YAML key left empty, which is null).
# - cfg_list(path): as_list of the config value at path (missing: []).
# - non_empty_string(x): x is a string with something other than blanks.
#
# This package has no deny/warn rules of its own. It runs wherever its users run: on the RVM
# with the rest of the bundle, or on the interpreter when a team file extends a bundle package.
package relgate.lib

cfg := c if {
	c := data.relgate.config
	is_object(c)
} else := {}

manifest := m if {
	m := input.manifest
	is_object(m)
} else := {}

kind := k if {
	k := object.get(manifest, "kind", "")
	is_string(k)
} else := ""

environment := e if {
	e := object.get(manifest, ["metadata", "environment"], "")
	is_string(e)
} else := ""

change_type := c if {
	c := object.get(manifest, ["metadata", "change_type"], "")
	is_string(c)
} else := ""

tier_key := format_int(t, 10) if {
	t := object.get(manifest, ["metadata", "tier"], null)
	is_number(t)
} else := t if {
	t := object.get(manifest, ["metadata", "tier"], null)
	is_string(t)
} else := ""

as_list(x) := x if {
	is_array(x)
} else := x if {
	is_set(x)
} else := []

cfg_list(path) := as_list(object.get(cfg, path, []))

non_empty_string(x) if {
	is_string(x)
	trim_space(x) != ""
}
