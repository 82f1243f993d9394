# relgate.pii: logging, redaction, retention and residency of user content (`spec.logging`).
#
# Rules: PII-CAPTURE-UNREDACTED, PII-ENTITIES, PII-RAW-CONTENT, PII-RETENTION, PII-SINK,
# PII-RESIDENCY. They apply in every environment, except PII-RAW-CONTENT (production only).
#
# Semantics:
# - PII-CAPTURE-UNREDACTED: `content_capture: true` and no `redaction` block (path
#   spec.logging.redaction), or a redaction block whose `enabled` is not true (path
#   spec.logging.redaction.enabled).
# - PII-ENTITIES: whenever redaction is enabled, its `entities` must include every entity in
#   config pii.required_entities (compared case-insensitively). One finding lists all missing
#   entities, sorted. Not reported when redaction is off (that is PII-CAPTURE-UNREDACTED's case).
# - PII-RAW-CONTENT: in production, a sink whose data_classes contain `raw_content` (path
#   spec.logging.sinks[i].data_classes[j]).
# - PII-RETENTION, checked per sink and data class against config pii.max_retention_days:
#   a class kept longer than its limit (path ...sinks[i].retention_days); a class that is not a
#   key of pii.max_retention_days, i.e. unknown to the gate (path ...sinks[i].data_classes[j]);
#   a sink without a numeric retention_days or without data_classes (fail closed: an unbounded
#   or undeclared retention cannot be checked).
# - PII-SINK: a sink whose `name` is missing or not in config pii.allowed_sinks.
# - PII-RESIDENCY: a sink region must be in config pii.allowed_regions AND, when the manifest
#   gives spec.logging.residency.allowed_regions, in that list too: the manifest can narrow the
#   gate's regions but never widen them. A sink without a region is a finding. One finding per
#   sink (the manifest's list is reported first).
package relgate.pii

import data.relgate.lib
import data.relgate.lib.cfg
import data.relgate.lib.manifest
import data.relgate.lib.environment

# ---------------------------------------------------------------------------------------------
# Inputs: cfg, manifest and the metadata fields come from relgate.lib (safe defaults).

logging := l if {
	l := object.get(manifest, ["spec", "logging"], {})
	is_object(l)
} else := {}

content_capture if logging.content_capture == true

redaction_enabled if logging.redaction.enabled == true

sinks := s if {
	s := logging.sinks
	is_array(s)
} else := []

# The strings in x when x is an array or set, else an empty set. (regorus raises an error for
# `some .. in` over a non-collection, e.g. a YAML key left empty, which is null.)
strings_of(x) := {s | some s in x; is_string(s)} if {
	is_collection_list(x)
} else := set()

is_collection_list(x) if is_array(x)

is_collection_list(x) if is_set(x)

list_str(xs) := concat(", ", sort(xs))

max_retention := r if {
	r := object.get(cfg, ["pii", "max_retention_days"], {})
	is_object(r)
} else := {}

allowed_sinks := strings_of(object.get(cfg, ["pii", "allowed_sinks"], []))

config_regions := strings_of(object.get(cfg, ["pii", "allowed_regions"], []))

required_entities := {upper(e) | some e in strings_of(object.get(cfg, ["pii", "required_entities"], []))}

# The manifest's own region list, when given (undefined otherwise).
manifest_regions := strings_of(r) if {
	r := logging.residency.allowed_regions
	is_array(r)
}

sink_path(i) := sprintf("spec.logging.sinks[%d]", [i])

sink_label(i, sink) := sprintf("sink %d (%s)", [i, sink.name]) if {
	is_string(sink.name)
} else := sprintf("sink %d", [i])

# data classes of a sink: index -> class (strings only)
data_classes(sink) := {j: c | some j, c in sink.data_classes; is_string(c)} if {
	is_array(sink.data_classes)
} else := {}

# ---------------------------------------------------------------------------------------------
# PII-CAPTURE-UNREDACTED

deny contains f if {
	content_capture
	not is_object(logging.redaction)
	f := {
		"rule": "PII-CAPTURE-UNREDACTED",
		"path": "spec.logging.redaction",
		"msg": "spec.logging.content_capture is true but there is no redaction block: prompts and outputs would be logged unredacted",
		"remediation": sprintf("add spec.logging.redaction {enabled: true, engine: presidio, entities: [%s]} or set content_capture: false", [list_str(required_entities)]),
	}
}

deny contains f if {
	content_capture
	is_object(logging.redaction)
	not redaction_enabled
	f := {
		"rule": "PII-CAPTURE-UNREDACTED",
		"path": "spec.logging.redaction.enabled",
		"msg": sprintf("spec.logging.content_capture is true but redaction.enabled is %v; expected true", [object.get(logging.redaction, "enabled", "missing")]),
		"remediation": "set spec.logging.redaction.enabled: true, or set content_capture: false",
	}
}

# ---------------------------------------------------------------------------------------------
# PII-ENTITIES

deny contains f if {
	redaction_enabled
	have := {upper(e) | some e in strings_of(logging.redaction.entities)}
	missing := required_entities - have
	count(missing) > 0
	f := {
		"rule": "PII-ENTITIES",
		"path": "spec.logging.redaction.entities",
		"msg": sprintf("redaction does not cover required entities: %s (required: %s)", [list_str(missing), list_str(required_entities)]),
		"remediation": sprintf("add %s to spec.logging.redaction.entities", [list_str(missing)]),
	}
}

# ---------------------------------------------------------------------------------------------
# PII-RAW-CONTENT

deny contains f if {
	environment == "production"
	some i, sink in sinks
	some j, c in data_classes(sink)
	c == "raw_content"
	f := {
		"rule": "PII-RAW-CONTENT",
		"path": sprintf("%s.data_classes[%d]", [sink_path(i), j]),
		"msg": sprintf("%s stores raw_content in production; raw prompts and outputs may not be stored", [sink_label(i, sink)]),
		"remediation": "store redacted_content instead (enable redaction) or remove raw_content from the sink's data_classes",
	}
}

# ---------------------------------------------------------------------------------------------
# PII-RETENTION

deny contains f if {
	some i, sink in sinks
	days := sink.retention_days
	is_number(days)
	some c in data_classes(sink)
	limit := max_retention[c]
	is_number(limit)
	days > limit
	f := {
		"rule": "PII-RETENTION",
		"path": sprintf("%s.retention_days", [sink_path(i)]),
		"msg": sprintf("%s keeps %s for %v days; the limit for %s is %v days", [sink_label(i, sink), c, days, c, limit]),
		"remediation": sprintf("set retention_days to at most %v, or stop sending %s to this sink", [limit, c]),
	}
}

deny contains f if {
	some i, sink in sinks
	some j, c in data_classes(sink)
	not is_number(max_retention[c])
	f := {
		"rule": "PII-RETENTION",
		"path": sprintf("%s.data_classes[%d]", [sink_path(i), j]),
		"msg": sprintf("%s lists data class %s, which the gate does not know, so its retention cannot be checked (known classes: %s)", [sink_label(i, sink), c, list_str(object.keys(max_retention))]),
		"remediation": sprintf("use one of the known data classes, or add %s to pii.max_retention_days in relgate.yaml", [c]),
	}
}

deny contains f if {
	some i, sink in sinks
	not is_number(sink.retention_days)
	f := {
		"rule": "PII-RETENTION",
		"path": sprintf("%s.retention_days", [sink_path(i)]),
		"msg": sprintf("%s declares no numeric retention_days; retention must be bounded", [sink_label(i, sink)]),
		"remediation": "set retention_days on the sink (days), within pii.max_retention_days for its data classes",
	}
}

deny contains f if {
	some i, sink in sinks
	count(data_classes(sink)) == 0
	f := {
		"rule": "PII-RETENTION",
		"path": sprintf("%s.data_classes", [sink_path(i)]),
		"msg": sprintf("%s declares no data_classes, so its retention cannot be checked", [sink_label(i, sink)]),
		"remediation": sprintf("list what the sink stores in data_classes (one of: %s)", [list_str(object.keys(max_retention))]),
	}
}

# ---------------------------------------------------------------------------------------------
# PII-SINK

deny contains f if {
	some i, sink in sinks
	not sink.name in allowed_sinks
	f := {
		"rule": "PII-SINK",
		"path": sprintf("%s.name", [sink_path(i)]),
		"msg": sprintf("%s is not an allowed sink (allowed: %s)", [sink_label(i, sink), list_str(allowed_sinks)]),
		"remediation": "send telemetry to an allowed sink, or have the platform team add it to pii.allowed_sinks in relgate.yaml",
	}
}

# ---------------------------------------------------------------------------------------------
# PII-RESIDENCY

residency_problem(sink) := "declares no region" if {
	not is_string(sink.region)
} else := sprintf("region %s is outside spec.logging.residency.allowed_regions (%s)", [sink.region, list_str(manifest_regions)]) if {
	is_set(manifest_regions)
	not sink.region in manifest_regions
} else := sprintf("region %s is outside the gate's allowed regions (pii.allowed_regions: %s)", [sink.region, list_str(config_regions)]) if {
	not sink.region in config_regions
}

deny contains f if {
	some i, sink in sinks
	problem := residency_problem(sink)
	f := {
		"rule": "PII-RESIDENCY",
		"path": sprintf("%s.region", [sink_path(i)]),
		"msg": sprintf("%s %s", [sink_label(i, sink), problem]),
		"remediation": "use a sink in an allowed region; the manifest's residency.allowed_regions can only narrow pii.allowed_regions",
	}
}
