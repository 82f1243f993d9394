package relgate.prr

# Unit tests for relgate.prr. Most tests use a small fixed config (fixture_cfg) so they do not
# change when the default catalogue is tuned; the test_default_config_* tests use the built-in
# config.default.yaml loaded as data.relgate.config.

fixture_cfg := {"prr": {
	"catalogue": {"PRR-OWN-01": "Ownership", "PRR-OPS-02": "Rollback tested", "PRR-EVAL-01": "Offline evaluation"},
	"required": {
		"production": {"1": ["PRR-OWN-01", "PRR-OPS-02", "PRR-EVAL-01"]},
		"staging": {"1": ["PRR-OWN-01"]},
	},
	"required_model": {"production": {"1": ["PRR-DATA-01"]}},
	"not_applicable_forbidden": ["PRR-OPS-02"],
}}

fixture_ctx := {"now": "2026-11-27T02:17:10Z", "today": "2026-11-27", "git": null, "pull_request": null}

# A compact valid production tier-1 PromptRelease that passes every PRR rule.
base := {
	"apiVersion": "relgate.dev/v1",
	"kind": "PromptRelease",
	"metadata": {
		"name": "support-answer", "version": "17", "service": "support-bot",
		"environment": "production", "tier": 1, "change_type": "feature",
	},
	"spec": {
		"owner": {"team": "assistants", "contact": "dana@example.com"},
		"prr": {
			"PRR-OWN-01": {"status": "done", "evidence": "https://wiki.example.com/owners"},
			"PRR-OPS-02": {"status": "done", "evidence": ["https://ci.example.com/rollback-drill/42"]},
			"PRR-EVAL-01": {"status": "waived", "waiver": {"approver": "bob@example.com", "reason": "suite being rebuilt", "expires": "2026-12-31"}},
		},
	},
}

findings(m) := fs if {
	fs := deny with input as {"manifest": m, "context": fixture_ctx} with data.relgate.config as fixture_cfg
}

findings_ctx(m, ctx) := fs if {
	fs := deny with input as {"manifest": m, "context": ctx} with data.relgate.config as fixture_cfg
}

of_rule(fs, rule) := {f | some f in fs; f.rule == rule}

# Fixture variants. (json.patch is not available: regorus is built without its "jsonpatch"
# feature, so variants are derived with object.union / object.remove.)

# base with spec.prr replaced by p
with_prr(m, p) := object.union(object.remove(m, ["spec"]), {"spec": object.union(object.remove(m.spec, ["prr"]), {"prr": p})})

with_item(id, v) := with_prr(base, object.union(object.remove(base.spec.prr, [id]), {id: v}))

without_item(id) := with_prr(base, object.remove(base.spec.prr, [id]))

with_meta(m, key, v) := object.union(m, {"metadata": {key: v}})

with_waiver(id, w) := with_item(id, {"status": "waived", "waiver": w})

good_waiver := {"approver": "bob@example.com", "reason": "slice set pending", "expires": "2026-12-31"}

# --- the fixture ---------------------------------------------------------------------------

test_base_passes if {
	count(findings(base)) == 0
}

test_default_config_base_needs_default_items if {
	# With the built-in config, production tier 1 requires more than the fixture has.
	fs := deny with input as {"manifest": base, "context": fixture_ctx}
	missing := {f.item | some f in of_rule(fs, "PRR-MISSING")}
	"PRR-MON-01" in missing
	"PRR-SEC-01" in missing
	not "PRR-OWN-01" in missing
}

test_default_config_tier0_empty_prr_lists_all if {
	m := with_prr(with_meta(base, "tier", 0), {})
	fs := deny with input as {"manifest": m, "context": fixture_ctx}
	missing := {f.item | some f in of_rule(fs, "PRR-MISSING")}
	missing == {
		"PRR-OWN-01", "PRR-OPS-01", "PRR-OPS-02", "PRR-MON-01", "PRR-EVAL-01",
		"PRR-EVAL-02", "PRR-SEC-01", "PRR-PRIV-01", "PRR-LOAD-01",
	}
}

test_default_config_dev_requires_nothing if {
	m := with_prr(with_meta(base, "environment", "dev"), {})
	count(deny) == 0 with input as {"manifest": m, "context": fixture_ctx}
}

# --- PRR-MISSING -----------------------------------------------------------------------------

test_missing_required_item if {
	fs := of_rule(findings(without_item("PRR-OWN-01")), "PRR-MISSING")
	count(fs) == 1
	some f in fs
	f.item == "PRR-OWN-01"
	f.path == "spec.prr[\"PRR-OWN-01\"]"
	contains(f.msg, "Ownership")
	f.remediation != ""
}

test_pending_status_is_missing if {
	fs := of_rule(findings(with_item("PRR-OWN-01", {"status": "pending"})), "PRR-MISSING")
	some f in fs
	f.item == "PRR-OWN-01"
	f.path == "spec.prr[\"PRR-OWN-01\"].status"
	contains(f.msg, "pending")
}

test_item_without_status_is_missing if {
	fs := of_rule(findings(with_item("PRR-OWN-01", {"evidence": "https://x"})), "PRR-MISSING")
	some f in fs
	f.path == "spec.prr[\"PRR-OWN-01\"].status"
	contains(f.msg, "(none)")
}

test_na_with_reason_satisfies if {
	count(findings(with_item("PRR-OWN-01", {"status": "n/a", "reason": "shared ownership record"}))) == 0
}

test_na_without_reason_is_missing if {
	fs := of_rule(findings(with_item("PRR-OWN-01", {"status": "n/a", "reason": "  "})), "PRR-MISSING")
	some f in fs
	f.item == "PRR-OWN-01"
	f.path == "spec.prr[\"PRR-OWN-01\"].reason"
}

test_model_release_requires_model_items if {
	m := object.union(base, {"kind": "ModelRelease"})
	fs := of_rule(findings(m), "PRR-MISSING")
	{f.item | some f in fs} == {"PRR-DATA-01"}
}

test_environment_and_tier_select_requirements if {
	staging := with_meta(base, "environment", "staging")
	m := with_prr(staging, object.remove(base.spec.prr, ["PRR-OPS-02", "PRR-EVAL-01"]))
	count(findings(m)) == 0
	count(of_rule(findings(with_prr(staging, {})), "PRR-MISSING")) == 1
	# tier 2 is not configured in fixture_cfg: nothing required
	count(findings(with_prr(with_meta(staging, "tier", 2), {}))) == 0
}

test_pending_unrequired_item_is_not_missing if {
	count(findings(with_item("PRR-LOAD-01", {"status": "pending"}))) == 0
}

# --- PRR-NA-FORBIDDEN ------------------------------------------------------------------------

test_na_forbidden if {
	fs := findings(with_item("PRR-OPS-02", {"status": "n/a", "reason": "stateless prompt"}))
	nf := of_rule(fs, "PRR-NA-FORBIDDEN")
	count(nf) == 1
	some f in nf
	f.item == "PRR-OPS-02"
	f.path == "spec.prr[\"PRR-OPS-02\"].status"
	# no double report as missing
	count(of_rule(fs, "PRR-MISSING")) == 0
}

test_na_forbidden_without_reason_reported_once if {
	fs := findings(with_item("PRR-OPS-02", {"status": "n/a"}))
	count(of_rule(fs, "PRR-NA-FORBIDDEN")) == 1
	count(of_rule(fs, "PRR-MISSING")) == 0
}

test_na_forbidden_not_required_is_fine if {
	m := with_meta(with_item("PRR-OPS-02", {"status": "n/a", "reason": "no deploy"}), "environment", "staging")
	count(findings(m)) == 0
}

test_done_forbidden_item_passes if {
	count(of_rule(findings(base), "PRR-NA-FORBIDDEN")) == 0
}

# --- PRR-WAIVER-INVALID ----------------------------------------------------------------------

test_valid_waiver_passes if {
	count(findings(with_waiver("PRR-OWN-01", good_waiver))) == 0
}

test_waived_without_waiver_block if {
	fs := of_rule(findings(with_item("PRR-OWN-01", {"status": "waived"})), "PRR-WAIVER-INVALID")
	some f in fs
	f.item == "PRR-OWN-01"
	f.path == "spec.prr[\"PRR-OWN-01\"].waiver"
}

test_waiver_without_approver if {
	fs := of_rule(findings(with_waiver("PRR-OWN-01", object.remove(good_waiver, ["approver"]))), "PRR-WAIVER-INVALID")
	{f.path | some f in fs} == {"spec.prr[\"PRR-OWN-01\"].waiver.approver"}
}

test_waiver_without_reason_or_expires if {
	w := object.union(object.remove(good_waiver, ["expires"]), {"reason": ""})
	fs := of_rule(findings(with_waiver("PRR-OWN-01", w)), "PRR-WAIVER-INVALID")
	{f.path | some f in fs} == {
		"spec.prr[\"PRR-OWN-01\"].waiver.reason",
		"spec.prr[\"PRR-OWN-01\"].waiver.expires",
	}
	# an invalid waiver is not also checked for expiry
	count(of_rule(findings(with_waiver("PRR-OWN-01", w)), "PRR-WAIVER-EXPIRED")) == 0
}

test_waiver_expires_not_a_date if {
	fs := of_rule(findings(with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "next quarter"}))), "PRR-WAIVER-INVALID")
	some f in fs
	f.path == "spec.prr[\"PRR-OWN-01\"].waiver.expires"
	contains(f.msg, "next quarter")
}

test_waiver_expires_number_is_invalid if {
	fs := of_rule(findings(with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": 20261231}))), "PRR-WAIVER-INVALID")
	count(fs) == 1
}

test_waiver_self_approval_case_insensitive if {
	w := object.union(good_waiver, {"approver": " Dana@EXAMPLE.com "})
	fs := of_rule(findings(with_waiver("PRR-OWN-01", w)), "PRR-WAIVER-INVALID")
	count(fs) == 1
	some f in fs
	f.item == "PRR-OWN-01"
	f.path == "spec.prr[\"PRR-OWN-01\"].waiver.approver"
	contains(f.msg, "owner")
}

# The owner's plus-address reaches the owner's mailbox: not an independent approver.
test_waiver_self_approval_plus_address if {
	some approver in ["dana+waivers@example.com", "Dana+W@Example.COM", "dana+@example.com"]
	w := object.union(good_waiver, {"approver": approver})
	fs := of_rule(findings(with_waiver("PRR-OWN-01", w)), "PRR-WAIVER-INVALID")
	count(fs) == 1
	some f in fs
	f.path == "spec.prr[\"PRR-OWN-01\"].waiver.approver"
	contains(f.msg, "approved by the owner contact")
}

test_waiver_owner_contact_with_plus_tag if {
	m := object.union(with_waiver("PRR-OWN-01", good_waiver), {"spec": {"owner": {"contact": "Dana+Team@example.com"}}})
	count(findings(m)) == 0
	m2 := object.union(with_waiver("PRR-OWN-01", object.union(good_waiver, {"approver": "dana@example.com"})), {"spec": {"owner": {"contact": "Dana+Team@example.com"}}})
	count(of_rule(findings(m2), "PRR-WAIVER-INVALID")) == 1
}

test_waiver_other_person_same_domain_is_independent if {
	some approver in ["danab@example.com", "dana@example.org", "bob+dana@example.com"]
	count(findings(with_waiver("PRR-OWN-01", object.union(good_waiver, {"approver": approver})))) == 0
}

test_address_key if {
	address_key(" Dana+x@Example.com ") == "dana@example.com"
	address_key("not-an-address") == "not-an-address"
	address_key("a@b@c") == "a@b@c"
	address_key("<Dana@Example.com>") == "dana@example.com"
	address_key("mailto:dana+w@example.com.") == "dana@example.com"
	address_key("\"dana\"@example.com") == "dana@example.com"
}

# --- org bound: prr.max_waiver_days ------------------------------------------------------------

test_waiver_longer_than_max_days_is_invalid if {
	fs := of_rule(findings(with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2099-12-31"}))), "PRR-WAIVER-INVALID")
	count(fs) == 1
	some f in fs
	f.path == "spec.prr[\"PRR-OWN-01\"].waiver.expires"
	contains(f.msg, "waiver expires 2099-12-31")
	contains(f.msg, "after today (2026-11-27); a waiver may run at most 180 days (prr.max_waiver_days)")
	# exactly 180 days (2027-05-26) is allowed, 181 is not
	count(findings(with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2027-05-26"})))) == 0
	count(of_rule(findings(with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2027-05-27"}))), "PRR-WAIVER-INVALID")) == 1
}

test_max_waiver_days_from_config if {
	cfg := object.union(fixture_cfg, {"prr": {"max_waiver_days": 30}})
	m := with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2026-12-31"}))
	fs := deny with input as {"manifest": m, "context": fixture_ctx} with data.relgate.config as cfg
	w := [x | some x in fs; x.rule == "PRR-WAIVER-INVALID"][0]
	contains(w.msg, "34 days after today")
	bad := object.union(fixture_cfg, {"prr": {"max_waiver_days": "forever"}})
	far := with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2099-12-31"}))
	fs2 := deny with input as {"manifest": far, "context": fixture_ctx} with data.relgate.config as bad
	count(of_rule(fs2, "PRR-WAIVER-INVALID")) == 1
}

test_default_config_max_waiver_days if {
	m := with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2099-12-31"}))
	fs := deny with input as {"manifest": m, "context": fixture_ctx}
	count(of_rule(fs, "PRR-WAIVER-INVALID")) == 1
}

test_waiver_expires_not_a_calendar_date if {
	fs := of_rule(findings(with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2026-02-30"}))), "PRR-WAIVER-INVALID")
	count(fs) == 1
	some f in fs
	contains(f.msg, "is not a calendar date")
}

test_waiver_on_unrequired_item_is_checked if {
	fs := of_rule(findings(with_waiver("PRR-SEC-01", {"approver": "bob@example.com"})), "PRR-WAIVER-INVALID")
	{f.item | some f in fs} == {"PRR-SEC-01"}
	count(fs) == 2
}

# --- PRR-WAIVER-EXPIRED ----------------------------------------------------------------------

test_waiver_expiring_today_is_valid if {
	count(findings(with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2026-11-27"})))) == 0
}

test_waiver_expired_yesterday if {
	fs := of_rule(findings(with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2026-11-26"}))), "PRR-WAIVER-EXPIRED")
	count(fs) == 1
	some f in fs
	f.item == "PRR-OWN-01"
	f.path == "spec.prr[\"PRR-OWN-01\"].waiver.expires"
	contains(f.msg, "2026-11-26")
	contains(f.msg, "2026-11-27")
}

test_waiver_rfc3339_expiry_compares_date if {
	expired := with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2026-11-26T23:59:59Z"}))
	count(of_rule(findings(expired), "PRR-WAIVER-EXPIRED")) == 1
	valid := with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2026-11-27T00:00:00Z"}))
	count(findings(valid)) == 0
}

test_waiver_expiry_uses_now_without_today if {
	m := with_waiver("PRR-OWN-01", object.union(good_waiver, {"expires": "2026-11-26"}))
	fs := findings_ctx(m, {"now": "2026-11-27T02:17:10Z"})
	count(of_rule(fs, "PRR-WAIVER-EXPIRED")) == 1
	count(findings_ctx(base, {"now": "2026-11-27T02:17:10Z"})) == 0
}

test_waiver_expired_on_unrequired_item if {
	fs := of_rule(findings(with_waiver("PRR-SEC-01", object.union(good_waiver, {"expires": "2025-01-01"}))), "PRR-WAIVER-EXPIRED")
	{f.item | some f in fs} == {"PRR-SEC-01"}
}

# --- PRR-EVIDENCE ----------------------------------------------------------------------------

test_done_with_evidence_passes if {
	count(of_rule(findings(base), "PRR-EVIDENCE")) == 0
}

test_done_without_evidence if {
	fs := of_rule(findings(with_item("PRR-OWN-01", {"status": "done"})), "PRR-EVIDENCE")
	count(fs) == 1
	some f in fs
	f.item == "PRR-OWN-01"
	f.path == "spec.prr[\"PRR-OWN-01\"].evidence"
}

test_done_with_blank_evidence if {
	count(of_rule(findings(with_item("PRR-OWN-01", {"status": "done", "evidence": " "})), "PRR-EVIDENCE")) == 1
	count(of_rule(findings(with_item("PRR-OWN-01", {"status": "done", "evidence": []})), "PRR-EVIDENCE")) == 1
	count(of_rule(findings(with_item("PRR-OWN-01", {"status": "done", "evidence": ["https://x", ""]})), "PRR-EVIDENCE")) == 1
}

test_unrequired_done_item_needs_evidence if {
	fs := of_rule(findings(with_item("PRR-LOAD-01", {"status": "done"})), "PRR-EVIDENCE")
	{f.item | some f in fs} == {"PRR-LOAD-01"}
}

# --- robustness: malformed manifests never raise a runtime error ------------------------------

test_malformed_manifest_does_not_error if {
	m := {"kind": 7, "metadata": {"environment": ["production"], "tier": "x"}, "spec": {"prr": "all done", "owner": null}}
	count(findings(m)) == 0
	count(findings({})) == 0
	m2 := with_item("PRR-OWN-01", "done")
	fs := findings(m2)
	{f.rule | some f in fs} == {"PRR-MISSING"}
	m3 := object.union(object.remove(base, ["spec"]), {"spec": object.union(object.remove(base.spec, ["owner"]), {"owner": "dana"})})
	count(findings(m3)) == 0
}

test_no_input_no_error if {
	count(deny) == 0 with data.relgate.config as fixture_cfg
}

test_malformed_config_does_not_error if {
	bad := {"prr": {"required": {"production": {"1": null}}, "required_model": "x", "not_applicable_forbidden": null, "catalogue": []}}
	fs := deny with input as {"manifest": with_item("PRR-OWN-01", {"status": "done"}), "context": null} with data.relgate.config as bad
	{f.rule | some f in fs} == {"PRR-EVIDENCE"}
	fs2 := deny with input as {"manifest": base} with data.relgate.config as {"prr": {"required": {"production": {"1": "PRR-OWN-01"}}}}
	count(fs2) == 0
	count(deny) == 0 with input as {"manifest": base} with data.relgate.config as null
}
