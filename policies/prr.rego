# relgate.prr: production readiness review (PRR) items, `spec.prr` (item id -> status).
#
# Rules: PRR-MISSING, PRR-NA-FORBIDDEN, PRR-WAIVER-INVALID, PRR-WAIVER-EXPIRED, PRR-EVIDENCE.
#
# Semantics:
# - Required items = data.relgate.config.prr.required[environment][tier], plus
#   prr.required_model[environment][tier] for kind ModelRelease. The manifest's integer tier is
#   converted to a string ("0".."3") to index the config. An environment or tier missing from the
#   config requires nothing.
# - Status `done`, `n/a` and `waived` satisfy a required item; any other status (e.g. `pending`),
#   a missing status or a missing item is PRR-MISSING (path `spec.prr["ID"]`, or `.status` when
#   the item is present with another status).
# - An `n/a` required item needs a non-empty `reason`; without one it is PRR-MISSING with path
#   `spec.prr["ID"].reason`.
# - PRR-NA-FORBIDDEN fires for a *required* item listed in prr.not_applicable_forbidden whose
#   status is n/a (with or without a reason; it then gets no PRR-MISSING). A non-required item
#   declared n/a is harmless and not reported.
# - Every item present in the manifest, required or not, is checked for evidence (PRR-EVIDENCE:
#   status done without a non-empty `evidence` string or a non-empty list of non-empty strings)
#   and waiver validity.
# - PRR-WAIVER-INVALID: status waived without a `waiver` object, or without a non-empty approver,
#   reason or expires, or with `expires` not starting with a YYYY-MM-DD date (or not a calendar
#   date), or expiring more than config prr.max_waiver_days (default 180) after today (an org
#   bound: the manifest cannot waive an item for good), or with an approver that is the
#   owner's mailbox: spec.owner.contact compared after trimming blanks, lower-casing and
#   dropping a `+tag` of the local part (dana+w@example.com is dana@example.com). One finding
#   per problem, each with the path of the offending field.
# - PRR-WAIVER-EXPIRED: the first 10 characters of `expires` (the date of a YYYY-MM-DD or RFC 3339
#   value) are before input.context.today (string compare). A waiver expiring today is still valid
#   today. Without context.today the date of context.now is used, and without both the engine's
#   clock. An invalid waiver is not also checked for expiry.
# - A finding for an item carries `item`; messages use the title from prr.catalogue.
package relgate.prr

import data.relgate.lib
import data.relgate.lib.cfg
import data.relgate.lib.manifest
import data.relgate.lib.kind
import data.relgate.lib.environment
import data.relgate.lib.tier_key

# ---------------------------------------------------------------------------------------------
# Inputs: cfg, manifest and the metadata fields come from relgate.lib (safe defaults).

items := p if {
	p := object.get(manifest, ["spec", "prr"], {})
	is_object(p)
} else := {}

owner_contact := address_key(c) if {
	c := object.get(manifest, ["spec", "owner", "contact"], "")
	is_string(c)
} else := ""

# An e-mail address as the mailbox it reaches: blanks trimmed, lower case, and a `+tag` of the
# local part dropped (dana+waivers@example.com reaches dana@example.com). Every identity
# comparison goes through it, so a plus-address or capitals cannot pass the owner off as
# someone else.
#
# The schema's e-mail pattern also admits other spellings of one mailbox, so they are undone
# too: `<dana@example.com>`, a `mailto:` prefix, a quoted local part (`"dana"@example.com`) and
# the root dot of a fully qualified domain (`dana@example.com.`). Without this the owner could
# approve their own waiver by writing their address differently.
address_key(a) := key if {
	bare := trim_prefix(trim_suffix(trim_prefix(lower(trim_space(a)), "<"), ">"), "mailto:")
	parts := split(bare, "@")
	count(parts) == 2
	local := split(trim(parts[0], "\""), "+")[0]
	key := sprintf("%s@%s", [local, trim_suffix(parts[1], ".")])
} else := lower(trim_space(a))

today := t if {
	t := input.context.today
	is_string(t)
	count(t) >= 10
} else := substring(n, 0, 10) if {
	n := input.context.now
	is_string(n)
	count(n) >= 10
} else := date_string(time.now_ns())

date_string(ns) := sprintf("%04d-%02d-%02d", time.date(ns))

# ---------------------------------------------------------------------------------------------
# Configuration lookups.

# Item ids listed in config map[environment][tier], as a set of strings.
configured_items(section) := {id |
	some id in lib.as_list(object.get(cfg, ["prr", section, environment, tier_key], []))
	is_string(id)
}

required contains id if some id in configured_items("required")

required contains id if {
	kind == "ModelRelease"
	some id in configured_items("required_model")
}

na_forbidden contains id if {
	some id in lib.as_list(object.get(cfg, ["prr", "not_applicable_forbidden"], []))
	is_string(id)
}

title(id) := t if {
	t := object.get(cfg, ["prr", "catalogue", id], null)
	is_string(t)
} else := id

# ---------------------------------------------------------------------------------------------
# Item helpers.

satisfying_status := {"done", "n/a", "waived"}

status(id) := s if {
	s := items[id].status
	is_string(s)
} else := ""

shown_status(s) := s if s != ""

shown_status("") := "(none)"

item_path(id) := sprintf("spec.prr[\"%s\"]", [id])

has_evidence(v) if lib.non_empty_string(v.evidence)

has_evidence(v) if {
	is_array(v.evidence)
	count(v.evidence) > 0
	every e in v.evidence {
		lib.non_empty_string(e)
	}
}

waiver(id) := w if {
	w := items[id].waiver
	is_object(w)
} else := {}

iso_date(x) if regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}`, x)

# Waiver problems, as a set of [field, message] pairs (field: the waiver key at fault).
waiver_problems(id) := {[field, msg] |
	some field in ["approver", "reason", "expires"]
	not lib.non_empty_string(object.get(waiver(id), field, null))
	msg := sprintf("waiver has no %s", [field])
} | {[field, msg] |
	field := "expires"
	e := waiver(id).expires
	lib.non_empty_string(e)
	not iso_date(e)
	msg := sprintf("waiver expires \"%s\" is not a date (YYYY-MM-DD)", [e])
} | {[field, msg] |
	field := "approver"
	a := waiver(id).approver
	lib.non_empty_string(a)
	owner_contact != ""
	address_key(a) == owner_contact
	msg := sprintf("waiver is approved by the owner contact %s; a waiver needs someone other than the owner", [a])
} | {[field, msg] |
	field := "expires"
	e := waiver(id).expires
	lib.non_empty_string(e)
	iso_date(e)
	not day_ns(substring(e, 0, 10))
	msg := sprintf("waiver expires \"%s\" is not a calendar date", [e])
} | {[field, msg] |
	field := "expires"
	e := waiver(id).expires
	lib.non_empty_string(e)
	iso_date(e)
	days := days_until(substring(e, 0, 10))
	days > max_waiver_days
	msg := sprintf("waiver expires %s, %d days after today (%s); a waiver may run at most %v days (prr.max_waiver_days)", [substring(e, 0, 10), days, today, max_waiver_days])
}

# The org's longest waiver (config prr.max_waiver_days): the manifest sets `expires` itself, so
# without a bound `expires: 2099-12-31` would waive an item for good. A value that is not a
# number means the built-in 180.
max_waiver_days := n if {
	n := object.get(cfg, ["prr", "max_waiver_days"], null)
	is_number(n)
} else := 180

# Midnight UTC of a YYYY-MM-DD date, in ns (undefined for a non-date such as 2026-02-30).
day_ns(d) := time.parse_rfc3339_ns(sprintf("%sT00:00:00Z", [d]))

# Whole days from today to date d.
days_until(d) := round((day_ns(d) - day_ns(today)) / 86400000000000)

# ---------------------------------------------------------------------------------------------
# PRR-MISSING

deny contains f if {
	some id in required
	not items[id]
	f := {
		"rule": "PRR-MISSING",
		"item": id,
		"path": item_path(id),
		"msg": sprintf("required PRR item %s (%s) is missing for a %s tier %s %s", [id, title(id), environment, tier_key, kind]),
		"remediation": sprintf("add spec.prr.%s with status done and evidence (a link), or waived with a waiver {approver, reason, expires}", [id]),
	}
}

deny contains f if {
	some id in required
	items[id]
	s := status(id)
	not s in satisfying_status
	shown := shown_status(s)
	f := {
		"rule": "PRR-MISSING",
		"item": id,
		"path": sprintf("%s.status", [item_path(id)]),
		"msg": sprintf("required PRR item %s (%s) has status %s; expected done, n/a or waived", [id, title(id), shown]),
		"remediation": sprintf("complete %s and set status: done with evidence, or set status: waived with a waiver {approver, reason, expires}", [id]),
	}
}

deny contains f if {
	some id in required
	status(id) == "n/a"
	not id in na_forbidden
	not lib.non_empty_string(items[id].reason)
	f := {
		"rule": "PRR-MISSING",
		"item": id,
		"path": sprintf("%s.reason", [item_path(id)]),
		"msg": sprintf("required PRR item %s (%s) is n/a without a reason", [id, title(id)]),
		"remediation": sprintf("add a reason to spec.prr.%s saying why it does not apply, or complete it", [id]),
	}
}

# ---------------------------------------------------------------------------------------------
# PRR-NA-FORBIDDEN

deny contains f if {
	some id in required
	id in na_forbidden
	status(id) == "n/a"
	f := {
		"rule": "PRR-NA-FORBIDDEN",
		"item": id,
		"path": sprintf("%s.status", [item_path(id)]),
		"msg": sprintf("PRR item %s (%s) may not be n/a", [id, title(id)]),
		"remediation": sprintf("complete %s and set status: done with evidence, or get a time-limited waiver from someone other than the owner", [id]),
	}
}

# ---------------------------------------------------------------------------------------------
# PRR-WAIVER-INVALID

deny contains f if {
	some id, v in items
	status(id) == "waived"
	not is_object(v.waiver)
	f := {
		"rule": "PRR-WAIVER-INVALID",
		"item": id,
		"path": sprintf("%s.waiver", [item_path(id)]),
		"msg": sprintf("PRR item %s (%s) is waived without a waiver", [id, title(id)]),
		"remediation": "add waiver: {approver: <someone other than the owner>, reason: <why>, expires: YYYY-MM-DD}",
	}
}

deny contains f if {
	some id, v in items
	status(id) == "waived"
	is_object(v.waiver)
	some [field, problem] in waiver_problems(id)
	f := {
		"rule": "PRR-WAIVER-INVALID",
		"item": id,
		"path": sprintf("%s.waiver.%s", [item_path(id), field]),
		"msg": sprintf("PRR item %s (%s): %s", [id, title(id), problem]),
		"remediation": "a waiver needs approver (not the owner contact), reason and expires (YYYY-MM-DD)",
	}
}

# ---------------------------------------------------------------------------------------------
# PRR-WAIVER-EXPIRED

deny contains f if {
	some id, v in items
	status(id) == "waived"
	is_object(v.waiver)
	count(waiver_problems(id)) == 0
	expires := substring(v.waiver.expires, 0, 10)
	expires < today
	f := {
		"rule": "PRR-WAIVER-EXPIRED",
		"item": id,
		"path": sprintf("%s.waiver.expires", [item_path(id)]),
		"msg": sprintf("waiver for PRR item %s (%s) expired on %s (today is %s)", [id, title(id), expires, today]),
		"remediation": sprintf("complete %s (status: done with evidence) or have the approver renew the waiver with a later expires date", [id]),
	}
}

# ---------------------------------------------------------------------------------------------
# PRR-EVIDENCE

deny contains f if {
	some id, v in items
	status(id) == "done"
	not has_evidence(v)
	f := {
		"rule": "PRR-EVIDENCE",
		"item": id,
		"path": sprintf("%s.evidence", [item_path(id)]),
		"msg": sprintf("PRR item %s (%s) is done but has no evidence", [id, title(id)]),
		"remediation": sprintf("add evidence to spec.prr.%s: a link to the review, test run or document", [id]),
	}
}
