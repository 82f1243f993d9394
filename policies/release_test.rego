package relgate.release

# Unit tests for relgate.release. Tests use fixture_cfg (the rollout/rollback part of the default
# config) unless named test_default_config_*, which rely on config.default.yaml loaded as
# data.relgate.config.

fixture_cfg := {
	"rollout": {"progressive_required": {"production": ["0", "1"]}, "exempt_change_types": ["rollback"]},
	"rollback": {"max_minutes": {"0": 10, "1": 10, "2": 30, "3": 60}, "environments": ["staging", "production"], "exempt_change_types": ["rollback"]},
}

prompt_digest := "sha256:5d41402abc4b2a76b9719d911017c592aaf8c9e2d9c3a1f2b6a41c4bd7e8f0a1"

other_digest := "sha256:0000000000000000000000000000000000000000000000000000000000000001"

# A compact valid production tier-1 PromptRelease that passes every release rule.
base := {
	"apiVersion": "relgate.dev/v1",
	"kind": "PromptRelease",
	"metadata": {"name": "support-answer", "version": "17", "service": "support-bot", "environment": "production", "tier": 1, "change_type": "feature"},
	"spec": {
		"owner": {"team": "assistants", "contact": "dana@example.com"},
		"prompt": {"registry": "git", "path": "prompts/answer.prompt", "digest": prompt_digest, "baseline": {"version": "15"}},
		"rollout": {"strategy": "canary", "steps": [5, 25, 50, 100], "bake_minutes": 30},
		"rollback": {"to_version": "15", "max_minutes": 5, "automated": true},
	},
}

artifact := {"role": "prompt", "path": "prompts/answer.prompt", "declared_digest": prompt_digest, "digest": prompt_digest, "error": null}

base_evidence := {"artifacts": [artifact], "evaluations": [], "slo": []}

findings_ev(m, ev) := fs if {
	fs := deny with input as {"manifest": m, "evidence": ev} with data.relgate.config as fixture_cfg
}

findings(m) := findings_ev(m, base_evidence)

warnings(m) := ws if {
	ws := warn with input as {"manifest": m, "evidence": base_evidence} with data.relgate.config as fixture_cfg
}

with_artifacts(arts) := object.union(base_evidence, {"artifacts": arts})

of_rule(fs, rule) := {f | some f in fs; f.rule == rule}

paths(fs, rule) := {f.path | some f in of_rule(fs, rule)}

# m with spec.<key> replaced by v (objects merge, so remove first)
with_spec(m, key, v) := object.union(object.remove(m, ["spec"]), {"spec": object.union(object.remove(m.spec, [key]), {key: v})})

without_spec(m, key) := object.union(object.remove(m, ["spec"]), {"spec": object.remove(m.spec, [key])})

with_meta(m, key, v) := object.union(m, {"metadata": {key: v}})

with_rollout(r) := with_spec(base, "rollout", r)

with_steps(steps) := with_rollout(object.union(base.spec.rollout, {"steps": steps}))

with_rollback(r) := with_spec(base, "rollback", r)

rollback_with(patch) := with_rollback(object.union(base.spec.rollback, patch))

# --- the fixture -----------------------------------------------------------------------------

test_base_passes if {
	count(findings(base)) == 0
}

test_default_config_base_passes if {
	count(deny) == 0 with input as {"manifest": base, "evidence": base_evidence}
}

# --- ARTIFACT-DIGEST -------------------------------------------------------------------------

test_digest_match_is_case_insensitive if {
	count(findings_ev(base, with_artifacts([object.union(artifact, {"digest": upper(prompt_digest)})]))) == 0
}

test_digest_mismatch if {
	fs := of_rule(findings_ev(base, with_artifacts([object.union(artifact, {"digest": other_digest})])), "ARTIFACT-DIGEST")
	count(fs) == 1
	some f in fs
	f.path == "spec.prompt.digest"
	contains(f.msg, other_digest)
	contains(f.msg, prompt_digest)
	contains(f.msg, "prompts/answer.prompt")
	contains(f.remediation, other_digest)
}

test_digest_null_reports_error if {
	a := object.union(artifact, {"digest": null, "error": "file not found: prompts/answer.prompt"})
	fs := of_rule(findings_ev(base, with_artifacts([a])), "ARTIFACT-DIGEST")
	count(fs) == 1
	some f in fs
	f.path == "spec.prompt.path"
	contains(f.msg, "file not found: prompts/answer.prompt")
}

test_digest_null_without_error_text if {
	a := object.remove(object.union(artifact, {"digest": null}), ["error"])
	fs := of_rule(findings_ev(base, with_artifacts([a])), "ARTIFACT-DIGEST")
	some f in fs
	contains(f.msg, "no error given")
}

test_no_artifact_fails_closed if {
	paths(findings_ev(base, with_artifacts([])), "ARTIFACT-DIGEST") == {"spec.prompt.path"}
	paths(findings_ev(base, {}), "ARTIFACT-DIGEST") == {"spec.prompt.path"}
	# an artifact with another role does not count
	paths(findings_ev(base, with_artifacts([object.union(artifact, {"role": "model"})])), "ARTIFACT-DIGEST") == {"spec.prompt.path"}
}

test_no_declared_digest if {
	m := with_spec(base, "prompt", object.remove(base.spec.prompt, ["digest"]))
	fs := of_rule(findings(m), "ARTIFACT-DIGEST")
	count(fs) == 1
	some f in fs
	f.path == "spec.prompt.digest"
	contains(f.remediation, prompt_digest)
}

test_registry_prompt_without_repository_file_not_checked if {
	# relgate records no artifact for a prompt that names no repository file
	m := with_spec(base, "prompt", object.union(base.spec.prompt, {"registry": "langfuse"}))
	count(findings_ev(m, {})) == 0
	count(findings_ev(m, with_artifacts([]))) == 0
}

# A prompt file that lives in the repository is digest-checked whatever `registry` says.
test_repository_prompt_checked_whatever_the_registry if {
	some registry in ["langfuse", "mlflow", "other"]
	m := with_spec(base, "prompt", object.union(base.spec.prompt, {"registry": registry}))
	fs := of_rule(findings_ev(m, with_artifacts([object.union(artifact, {"digest": other_digest})])), "ARTIFACT-DIGEST")
	count(fs) == 1
	some f in fs
	f.path == "spec.prompt.digest"
	contains(f.msg, "prompt file prompts/answer.prompt has digest")
	count(findings_ev(m, base_evidence)) == 0
}

test_repository_prompt_unreadable_whatever_the_registry if {
	m := with_spec(base, "prompt", object.union(base.spec.prompt, {"registry": "other"}))
	a := object.union(artifact, {"digest": null, "error": "prompts/answer.prompt leaves the gate root"})
	paths(findings_ev(m, with_artifacts([a])), "ARTIFACT-DIGEST") == {"spec.prompt.path"}
}

test_prompt_named_by_path_and_uri_each_reports_its_own_field if {
	m := with_spec(base, "prompt", {"registry": "other", "path": "prompts/answer.prompt", "uri": "prompts/other.prompt", "digest": prompt_digest})
	by_path := object.union(artifact, {"digest": null, "error": "too large"})
	by_uri := object.union(artifact, {"path": "prompts/other.prompt", "digest": null, "error": "a directory"})
	paths(findings_ev(m, with_artifacts([by_path])), "ARTIFACT-DIGEST") == {"spec.prompt.path"}
	paths(findings_ev(m, with_artifacts([by_uri])), "ARTIFACT-DIGEST") == {"spec.prompt.uri"}
	paths(findings_ev(m, with_artifacts([by_path, by_uri])), "ARTIFACT-DIGEST") == {"spec.prompt.path", "spec.prompt.uri"}
}

test_repository_prompt_named_by_uri if {
	m := with_spec(base, "prompt", {"registry": "other", "uri": "file:prompts/answer.prompt", "digest": prompt_digest})
	a := object.union(artifact, {"digest": null, "error": "too large"})
	paths(findings_ev(m, with_artifacts([a])), "ARTIFACT-DIGEST") == {"spec.prompt.uri"}
	paths(findings_ev(m, with_artifacts([object.union(artifact, {"digest": other_digest})])), "ARTIFACT-DIGEST") == {"spec.prompt.digest"}
}

model := object.union(without_spec(object.union(base, {"kind": "ModelRelease"}), "prompt"), {"spec": {"model": {"registry": "other", "uri": "models/ranker.onnx", "digest": prompt_digest}}})

model_artifact := {"role": "model", "path": "models/ranker.onnx", "declared_digest": prompt_digest, "digest": prompt_digest, "error": null}

test_model_release_without_repository_file_not_checked if {
	count(findings_ev(model, {})) == 0
	# a prompt artifact does not belong to a ModelRelease
	count(findings_ev(model, base_evidence)) == 0
}

test_repository_model_file_digest_checked if {
	count(findings_ev(model, with_artifacts([model_artifact]))) == 0
	fs := of_rule(findings_ev(model, with_artifacts([object.union(model_artifact, {"digest": other_digest})])), "ARTIFACT-DIGEST")
	count(fs) == 1
	some f in fs
	f.path == "spec.model.digest"
	contains(f.msg, "model file models/ranker.onnx has digest")
	unreadable := object.union(model_artifact, {"digest": null, "error": "too large"})
	paths(findings_ev(model, with_artifacts([unreadable])), "ARTIFACT-DIGEST") == {"spec.model.uri"}
}

# --- ROLLOUT-PLAN ----------------------------------------------------------------------------

test_all_at_once_denied if {
	fs := of_rule(findings(with_rollout({"strategy": "all_at_once"})), "ROLLOUT-PLAN")
	count(fs) == 1
	some f in fs
	f.path == "spec.rollout.strategy"
	contains(f.msg, "production tier 1")
}

test_missing_rollout_denied if {
	paths(findings(without_spec(base, "rollout")), "ROLLOUT-PLAN") == {"spec.rollout.strategy"}
}

test_unknown_strategy_denied if {
	fs := of_rule(findings(with_rollout({"strategy": "yolo"})), "ROLLOUT-PLAN")
	some f in fs
	contains(f.msg, "unknown strategy")
}

test_canary_without_steps_denied if {
	paths(findings(with_rollout({"strategy": "canary"})), "ROLLOUT-PLAN") == {"spec.rollout.steps"}
	paths(findings(with_steps([])), "ROLLOUT-PLAN") == {"spec.rollout.steps"}
}

test_steps_not_ascending if {
	fs := of_rule(findings(with_steps([5, 50, 25, 100])), "ROLLOUT-PLAN")
	count(fs) == 1
	some f in fs
	f.path == "spec.rollout.steps[2]"
	contains(f.msg, "step 2 is 25 after 50")
}

test_steps_repeated_not_strictly_ascending if {
	paths(findings(with_steps([5, 5, 100])), "ROLLOUT-PLAN") == {"spec.rollout.steps[1]"}
}

test_last_step_not_100 if {
	fs := of_rule(findings(with_steps([5, 25, 50])), "ROLLOUT-PLAN")
	count(fs) == 1
	some f in fs
	f.path == "spec.rollout.steps[2]"
	contains(f.msg, "50")
	contains(f.msg, "100")
}

test_invalid_step_values if {
	paths(findings(with_steps([0, 50, 100])), "ROLLOUT-PLAN") == {"spec.rollout.steps[0]"}
	paths(findings(with_steps([10, "50", 100])), "ROLLOUT-PLAN") == {"spec.rollout.steps[1]"}
}

test_percentage_with_steps_passes if {
	count(findings(with_rollout({"strategy": "percentage", "steps": [10, 100]}))) == 0
}

# --- ROLLOUT-PLAN org floors: rollout.min_steps, rollout.max_first_step -----------------------

# `steps: [100]` is all at once under another name.
test_single_step_is_not_progressive if {
	fs := of_rule(findings(with_steps([100])), "ROLLOUT-PLAN")
	paths(findings(with_steps([100])), "ROLLOUT-PLAN") == {"spec.rollout.steps", "spec.rollout.steps[0]"}
	some f in fs
	f.path == "spec.rollout.steps"
	contains(f.msg, "has 1 step;")
	contains(f.msg, "at least 2 steps (rollout.min_steps)")
	# [10]: too few steps, and the last one is not 100 (reported at steps[0])
	pct := of_rule(findings(with_rollout({"strategy": "percentage", "steps": [10]})), "ROLLOUT-PLAN")
	count(pct) == 2
}

test_first_step_above_max_denied if {
	fs := of_rule(findings(with_steps([60, 100])), "ROLLOUT-PLAN")
	count(fs) == 1
	some f in fs
	f.path == "spec.rollout.steps[0]"
	contains(f.msg, "first rollout step is 60")
	contains(f.msg, "at most 25% of traffic")
	count(findings(with_steps([25, 100]))) == 0
}

test_rollout_floors_from_config if {
	cfg := object.union(fixture_cfg, {"rollout": {"min_steps": 3, "max_first_step": 5}})
	fs := deny with input as {"manifest": with_steps([10, 100]), "evidence": base_evidence} with data.relgate.config as cfg
	paths(fs, "ROLLOUT-PLAN") == {"spec.rollout.steps", "spec.rollout.steps[0]"}
	ok := deny with input as {"manifest": with_steps([5, 50, 100]), "evidence": base_evidence} with data.relgate.config as cfg
	count(ok) == 0
	# an org may also allow more: max_first_step 100, min_steps 1
	loose := object.union(fixture_cfg, {"rollout": {"min_steps": 1, "max_first_step": 100}})
	count(deny) == 0 with input as {"manifest": with_steps([100]), "evidence": base_evidence} with data.relgate.config as loose
}

test_rollout_floors_not_numbers_fall_back_to_defaults if {
	bad := object.union(fixture_cfg, {"rollout": {"min_steps": "1", "max_first_step": null}})
	fs := deny with input as {"manifest": with_steps([100]), "evidence": base_evidence} with data.relgate.config as bad
	paths(fs, "ROLLOUT-PLAN") == {"spec.rollout.steps", "spec.rollout.steps[0]"}
}

test_default_config_rollout_floors if {
	fs := deny with input as {"manifest": with_steps([100]), "evidence": base_evidence}
	paths(fs, "ROLLOUT-PLAN") == {"spec.rollout.steps", "spec.rollout.steps[0]"}
}

test_blue_green_and_shadow_need_no_steps if {
	count(findings(with_rollout({"strategy": "blue_green"}))) == 0
	count(findings(with_rollout({"strategy": "shadow", "steps": [50, 10]}))) == 0
}

test_rollout_not_required_below_tier_1 if {
	count(findings(with_meta(with_rollout({"strategy": "all_at_once"}), "tier", 2))) == 0
}

test_rollout_not_required_in_staging if {
	count(findings(with_meta(with_rollout({"strategy": "all_at_once"}), "environment", "staging"))) == 0
}

test_rollout_required_tier_0 if {
	count(of_rule(findings(with_meta(with_rollout({"strategy": "all_at_once"}), "tier", 0)), "ROLLOUT-PLAN")) == 1
}

test_rollback_release_may_go_all_at_once if {
	m := with_meta(with_rollout({"strategy": "all_at_once"}), "change_type", "rollback")
	count(findings(m)) == 0
	# ... and says what the exemption waived, for the approvers
	ws := warnings(m)
	count(ws) == 1
	some w in ws
	w.rule == "ROLLOUT-PLAN"
	w.path == "spec.rollout.strategy"
	endswith(w.msg, "(not blocking: change_type rollback is exempt (rollout.exempt_change_types); approving this release confirms it is one)")
	count(warnings(with_rollout({"strategy": "all_at_once"}))) == 0
}

test_rollout_config_override if {
	cfg := object.union(fixture_cfg, {"rollout": {"progressive_required": {"staging": ["0"]}}})
	m := with_meta(with_meta(with_rollout({"strategy": "all_at_once"}), "environment", "staging"), "tier", 0)
	fs := deny with input as {"manifest": m, "evidence": base_evidence} with data.relgate.config as cfg
	count(of_rule(fs, "ROLLOUT-PLAN")) == 1
}

# --- ROLLBACK-PLAN ---------------------------------------------------------------------------

test_missing_rollback_target if {
	fs := of_rule(findings(with_rollback(object.remove(base.spec.rollback, ["to_version"]))), "ROLLBACK-PLAN")
	count(fs) == 1
	some f in fs
	f.path == "spec.rollback.to_version"
}

test_missing_rollback_block if {
	paths(findings(without_spec(base, "rollback")), "ROLLBACK-PLAN") == {"spec.rollback.to_version", "spec.rollback.max_minutes"}
}

test_empty_rollback_target if {
	paths(findings(rollback_with({"to_version": " "})), "ROLLBACK-PLAN") == {"spec.rollback.to_version"}
}

test_rollback_target_is_release_version if {
	fs := of_rule(findings(rollback_with({"to_version": "17"})), "ROLLBACK-PLAN")
	some f in fs
	f.path == "spec.rollback.to_version"
	contains(f.msg, "version being released")
}

test_numeric_rollback_target_passes if {
	count(findings(rollback_with({"to_version": 15}))) == 0
}

test_max_minutes_at_limit_passes if {
	count(findings(rollback_with({"max_minutes": 10}))) == 0
}

test_max_minutes_over_limit if {
	fs := of_rule(findings(rollback_with({"max_minutes": 11})), "ROLLBACK-PLAN")
	count(fs) == 1
	some f in fs
	f.path == "spec.rollback.max_minutes"
	contains(f.msg, "is 11")
	contains(f.msg, "within 10 minutes")
}

test_max_minutes_limit_per_tier if {
	count(findings(with_meta(rollback_with({"max_minutes": 45}), "tier", 3))) == 0
	count(of_rule(findings(with_meta(rollback_with({"max_minutes": 45}), "tier", 2)), "ROLLBACK-PLAN")) == 1
}

test_max_minutes_missing if {
	paths(findings(with_rollback({"to_version": "15"})), "ROLLBACK-PLAN") == {"spec.rollback.max_minutes"}
}

test_rollback_not_required_in_dev if {
	count(findings(without_spec(with_meta(base, "environment", "dev"), "rollback"))) == 0
}

test_rollback_release_needs_no_rollback_plan if {
	m := without_spec(with_meta(base, "change_type", "rollback"), "rollback")
	count(findings(m)) == 0
	paths(warnings(m), "ROLLBACK-PLAN") == {"spec.rollback.to_version", "spec.rollback.max_minutes"}
	count(warnings(with_meta(base, "change_type", "rollback"))) == 0
}

# --- robustness ------------------------------------------------------------------------------

test_malformed_manifest_does_not_error if {
	count(findings({})) == 0
	m := {"kind": "PromptRelease", "metadata": {"environment": "production", "tier": "1", "version": 17}, "spec": {"prompt": "x", "rollout": "canary", "rollback": []}}
	{f.rule | some f in findings_ev(m, {})} == {"ROLLOUT-PLAN", "ROLLBACK-PLAN"}
	# a recorded prompt file with no spec.prompt.digest to compare with fails closed
	{f.rule | some f in findings(m)} == {"ARTIFACT-DIGEST", "ROLLOUT-PLAN", "ROLLBACK-PLAN"}
	m2 := with_steps("5,25,100")
	paths(findings(m2), "ROLLOUT-PLAN") == {"spec.rollout.steps"}
	count(findings_ev(base, {"artifacts": ["prompt", null]})) == 1
}

test_malformed_config_does_not_error if {
	bad := {"rollout": {"progressive_required": {"production": null}, "exempt_change_types": "rollback"}, "rollback": {"max_minutes": null, "environments": "production"}}
	fs := deny with input as {"manifest": with_rollout({"strategy": "all_at_once"}), "evidence": {"artifacts": null}} with data.relgate.config as bad
	{f.rule | some f in fs} == {"ARTIFACT-DIGEST"}
}
