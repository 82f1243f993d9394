package relgate.pii

# Unit tests for relgate.pii. Tests use fixture_cfg (the PII part of the default config) unless
# named test_default_config_*, which rely on config.default.yaml loaded as data.relgate.config.

fixture_cfg := {"pii": {
	"max_retention_days": {"raw_content": 0, "redacted_content": 30, "trace_metadata": 90, "eval_artifacts": 30, "metrics": 400},
	"allowed_sinks": ["langfuse", "datadog", "prometheus", "opensearch"],
	"allowed_regions": ["eu-west-1", "eu-central-1", "us-east-1"],
	"required_entities": ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"],
}}

# A compact valid production PromptRelease that passes every PII rule.
base := {
	"apiVersion": "relgate.dev/v1",
	"kind": "PromptRelease",
	"metadata": {"name": "support-answer", "version": "17", "service": "support-bot", "environment": "production", "tier": 1, "change_type": "feature"},
	"spec": {
		"owner": {"team": "assistants", "contact": "dana@example.com"},
		"logging": {
			"content_capture": true,
			"redaction": {"enabled": true, "engine": "presidio", "entities": ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"]},
			"sinks": [
				{"name": "langfuse", "region": "eu-west-1", "data_classes": ["trace_metadata", "redacted_content"], "retention_days": 30},
				{"name": "prometheus", "region": "eu-central-1", "data_classes": ["metrics"], "retention_days": 400},
			],
			"residency": {"allowed_regions": ["eu-west-1", "eu-central-1"]},
		},
	},
}

good_sink := base.spec.logging.sinks[0]

findings(m) := fs if {
	fs := deny with input as {"manifest": m} with data.relgate.config as fixture_cfg
}

of_rule(fs, rule) := {f | some f in fs; f.rule == rule}

paths(fs, rule) := {f.path | some f in of_rule(fs, rule)}

# base with spec.logging replaced by l
with_logging(m, l) := object.union(object.remove(m, ["spec"]), {"spec": object.union(object.remove(m.spec, ["logging"]), {"logging": l})})

# base with keys of spec.logging replaced (objects merge, arrays replace)
logging_with(patch) := with_logging(base, object.union(base.spec.logging, patch))

logging_without(keys) := with_logging(base, object.remove(base.spec.logging, keys))

# base with a single sink s
with_sink(s) := logging_with({"sinks": [s]})

sink_with(patch) := with_sink(object.union(good_sink, patch))

in_env(m, env) := object.union(m, {"metadata": {"environment": env}})

# --- the fixture -----------------------------------------------------------------------------

test_base_passes if {
	count(findings(base)) == 0
}

test_default_config_base_passes if {
	count(deny) == 0 with input as {"manifest": base}
}

test_no_logging_block_passes if {
	count(findings(object.union(object.remove(base, ["spec"]), {"spec": {"owner": base.spec.owner}}))) == 0
}

# --- PII-CAPTURE-UNREDACTED ------------------------------------------------------------------

test_capture_without_redaction_block if {
	fs := of_rule(findings(logging_without(["redaction"])), "PII-CAPTURE-UNREDACTED")
	count(fs) == 1
	some f in fs
	f.path == "spec.logging.redaction"
	# no entity finding piled on top
	count(of_rule(findings(logging_without(["redaction"])), "PII-ENTITIES")) == 0
}

test_capture_with_redaction_disabled if {
	fs := findings(logging_with({"redaction": {"enabled": false}}))
	paths(fs, "PII-CAPTURE-UNREDACTED") == {"spec.logging.redaction.enabled"}
	count(of_rule(fs, "PII-ENTITIES")) == 0
	some f in of_rule(fs, "PII-CAPTURE-UNREDACTED")
	contains(f.msg, "false")
}

test_capture_with_redaction_enabled_missing if {
	m := with_logging(base, object.union(object.remove(base.spec.logging, ["redaction"]), {"redaction": {"engine": "presidio"}}))
	paths(findings(m), "PII-CAPTURE-UNREDACTED") == {"spec.logging.redaction.enabled"}
}

test_no_capture_without_redaction_passes if {
	m := with_logging(base, object.union(object.remove(base.spec.logging, ["redaction"]), {"content_capture": false}))
	count(findings(m)) == 0
}

# --- PII-ENTITIES ----------------------------------------------------------------------------

test_all_entities_case_insensitive_pass if {
	count(findings(logging_with({"redaction": {"entities": ["person", "Email_Address", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE"]}}))) == 0
}

test_missing_entities_listed_sorted if {
	fs := of_rule(findings(logging_with({"redaction": {"entities": ["PERSON"]}})), "PII-ENTITIES")
	count(fs) == 1
	some f in fs
	f.path == "spec.logging.redaction.entities"
	contains(f.msg, "CREDIT_CARD, EMAIL_ADDRESS, PHONE_NUMBER (required:")
}

test_entities_absent if {
	m := logging_with({"redaction": {"enabled": true, "engine": "presidio", "entities": null}})
	count(of_rule(findings(m), "PII-ENTITIES")) == 1
}

# --- PII-RAW-CONTENT -------------------------------------------------------------------------

test_raw_content_in_production if {
	fs := findings(sink_with({"data_classes": ["trace_metadata", "raw_content"], "retention_days": 0}))
	paths(fs, "PII-RAW-CONTENT") == {"spec.logging.sinks[0].data_classes[1]"}
	# retention 0 is within raw_content's limit, so only the raw-content finding
	count(of_rule(fs, "PII-RETENTION")) == 0
}

test_raw_content_outside_production_is_not_raw_content_finding if {
	m := in_env(sink_with({"data_classes": ["raw_content"], "retention_days": 0}), "staging")
	count(findings(m)) == 0
}

test_raw_content_retained_in_staging_is_retention_finding if {
	m := in_env(sink_with({"data_classes": ["raw_content"], "retention_days": 7}), "staging")
	fs := findings(m)
	count(of_rule(fs, "PII-RAW-CONTENT")) == 0
	paths(fs, "PII-RETENTION") == {"spec.logging.sinks[0].retention_days"}
}

# --- PII-RETENTION ---------------------------------------------------------------------------

test_retention_at_limit_passes if {
	count(findings(sink_with({"data_classes": ["redacted_content"], "retention_days": 30}))) == 0
}

test_retention_over_limit if {
	fs := of_rule(findings(sink_with({"retention_days": 45})), "PII-RETENTION")
	# 45 days is within trace_metadata's 90 but over redacted_content's 30
	count(fs) == 1
	some f in fs
	f.path == "spec.logging.sinks[0].retention_days"
	contains(f.msg, "redacted_content for 45 days")
	contains(f.msg, "30 days")
}

test_retention_second_sink_path if {
	fs := findings(logging_with({"sinks": [good_sink, object.union(good_sink, {"name": "datadog", "data_classes": ["metrics"], "retention_days": 500})]}))
	paths(fs, "PII-RETENTION") == {"spec.logging.sinks[1].retention_days"}
}

test_unknown_data_class if {
	fs := of_rule(findings(sink_with({"data_classes": ["trace_metadata", "embeddings"]})), "PII-RETENTION")
	count(fs) == 1
	some f in fs
	f.path == "spec.logging.sinks[0].data_classes[1]"
	contains(f.msg, "embeddings")
	contains(f.msg, "does not know")
}

test_unknown_data_class_known_from_config if {
	cfg := object.union(fixture_cfg, {"pii": {"max_retention_days": {"embeddings": 30}}})
	fs := deny with input as {"manifest": sink_with({"data_classes": ["embeddings"]})} with data.relgate.config as cfg
	count(fs) == 0
}

test_missing_retention_days if {
	fs := findings(with_sink(object.remove(good_sink, ["retention_days"])))
	paths(fs, "PII-RETENTION") == {"spec.logging.sinks[0].retention_days"}
}

test_missing_data_classes if {
	fs := findings(with_sink(object.remove(good_sink, ["data_classes"])))
	paths(fs, "PII-RETENTION") == {"spec.logging.sinks[0].data_classes"}
}

# --- PII-SINK --------------------------------------------------------------------------------

test_allowed_sink_passes if {
	count(of_rule(findings(sink_with({"name": "opensearch"})), "PII-SINK")) == 0
}

test_sink_not_allowed if {
	fs := of_rule(findings(sink_with({"name": "pastebin"})), "PII-SINK")
	count(fs) == 1
	some f in fs
	f.path == "spec.logging.sinks[0].name"
	contains(f.msg, "pastebin")
	contains(f.msg, "datadog, langfuse, opensearch, prometheus")
}

test_sink_without_name if {
	paths(findings(with_sink(object.remove(good_sink, ["name"]))), "PII-SINK") == {"spec.logging.sinks[0].name"}
}

# --- PII-RESIDENCY ---------------------------------------------------------------------------

test_region_in_manifest_list_passes if {
	count(of_rule(findings(sink_with({"region": "eu-central-1"})), "PII-RESIDENCY")) == 0
}

test_region_outside_manifest_list if {
	# us-east-1 is allowed by the config but not by the manifest's own residency list
	fs := of_rule(findings(sink_with({"region": "us-east-1"})), "PII-RESIDENCY")
	count(fs) == 1
	some f in fs
	f.path == "spec.logging.sinks[0].region"
	contains(f.msg, "spec.logging.residency.allowed_regions (eu-central-1, eu-west-1)")
}

test_region_from_config_without_manifest_list if {
	no_list := with_logging(base, object.remove(base.spec.logging, ["residency"]))
	count(findings(no_list)) == 0
	m := with_logging(no_list, object.union(no_list.spec.logging, {"sinks": [object.union(good_sink, {"region": "ap-south-1"})]}))
	fs := of_rule(findings(m), "PII-RESIDENCY")
	count(fs) == 1
	some f in fs
	contains(f.msg, "pii.allowed_regions: eu-central-1, eu-west-1, us-east-1")
	# us-east-1 is fine by the config alone
	m2 := with_logging(no_list, object.union(no_list.spec.logging, {"sinks": [object.union(good_sink, {"region": "us-east-1"})]}))
	count(findings(m2)) == 0
}

test_manifest_list_cannot_widen_config if {
	m := logging_with({
		"residency": {"allowed_regions": ["ap-south-1"]},
		"sinks": [object.union(good_sink, {"region": "ap-south-1"})],
	})
	fs := of_rule(findings(m), "PII-RESIDENCY")
	count(fs) == 1
	some f in fs
	contains(f.msg, "pii.allowed_regions")
}

test_sink_without_region if {
	fs := of_rule(findings(with_sink(object.remove(good_sink, ["region"]))), "PII-RESIDENCY")
	some f in fs
	f.path == "spec.logging.sinks[0].region"
	contains(f.msg, "no region")
}

# --- robustness ------------------------------------------------------------------------------

test_malformed_logging_does_not_error if {
	count(findings(logging_with({"sinks": "langfuse"}))) == 0
	count(findings(with_logging(base, "yes"))) == 0
	count(findings({})) == 0
	fs := findings(logging_with({"sinks": ["langfuse"]}))
	{f.rule | some f in fs} == {"PII-RETENTION", "PII-SINK", "PII-RESIDENCY"}
	count(findings(sink_with({"data_classes": [7, "metrics"], "retention_days": "30"}))) > 0
}

test_malformed_config_does_not_error if {
	bad := {"pii": {"max_retention_days": null, "allowed_sinks": "langfuse", "allowed_regions": null, "required_entities": {"PERSON": true}}}
	fs := deny with input as {"manifest": base} with data.relgate.config as bad
	{f.rule | some f in fs} == {"PII-RETENTION", "PII-SINK", "PII-RESIDENCY"}
	count(deny) > 0 with input as {"manifest": base} with data.relgate.config as null
}
