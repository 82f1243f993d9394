package relgate.approvals

# Unit tests for relgate.approvals. Tests use fixture_cfg (the approvals part of the default
# config, with dismiss_stale switchable) unless named test_default_config_*, which rely on
# config.default.yaml loaded as data.relgate.config.
#
# The logins and review states are those of GitHub's own examples (fixtures/github in the
# project's shared fixtures): octocat's APPROVED review on ecdd80bb (pulls-list-reviews), the
# author of PR 1347 (pulls-get), erwinmombay's APPROVED review (a recorded
# pull_request_review delivery), Codertocat (a COMMENTED review).

fixture_cfg := {"approvals": {"production": {
	"min": 2,
	"two_person": true,
	"dismiss_stale": false,
	"teams": {"0": ["ml-reliability"], "1": ["ml-reliability"]},
}}}

cfg_with(patch) := {"approvals": {"production": object.union(fixture_cfg.approvals.production, patch)}}

head_sha := "6dcb09b5b57875f334f61aebed695e2e4193db5e"

old_sha := "ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091"

review(user, state) := {"user": user, "state": state, "submitted_at": "2019-11-17T17:43:43Z", "commit_id": head_sha, "stale": false}

stale_review(user, state) := {"user": user, "state": state, "submitted_at": "2019-11-17T17:43:43Z", "commit_id": old_sha, "stale": true}

# PR 1347 by Codertocat, approved by erwinmombay (member of ml-reliability) and octocat.
base_pr := {
	"number": 1347,
	"author": "Codertocat",
	"labels": [],
	"title": "Release support-answer 17",
	"draft": false,
	"state": "open",
	"merged": false,
	"merged_by": null,
	"base_ref": "master",
	"base_sha": old_sha,
	"head_ref": "new-topic",
	"head_sha": head_sha,
	"reviews": [review("erwinmombay", "APPROVED"), review("octocat", "APPROVED")],
	"approvers": ["erwinmombay", "octocat"],
	"teams": {"ml-reliability": {"org": "octo-org", "members": ["erwinmombay"]}},
}

# A production tier-0 PromptRelease (only metadata matters to this package).
base := {
	"apiVersion": "relgate.dev/v1",
	"kind": "PromptRelease",
	"metadata": {"name": "support-answer", "version": "17", "service": "support-bot", "environment": "production", "tier": 0, "change_type": "feature"},
	"spec": {"owner": {"team": "assistants", "contact": "dana@example.com"}},
}

ctx(pr) := {"now": "2026-11-27T02:17:10Z", "today": "2026-11-27", "git": null, "pull_request": pr}

findings_cfg(m, pr, cfg) := fs if {
	fs := deny with input as {"manifest": m, "context": ctx(pr)} with data.relgate.config as cfg
}

findings(pr) := findings_cfg(base, pr, fixture_cfg)

with_pr(patch) := object.union(base_pr, patch)

# base_pr with pull_request.teams replaced (object.union would merge the team maps).
with_teams(teams) := object.union(object.remove(base_pr, ["teams"]), {"teams": teams})

with_reviews(rs) := with_pr({"reviews": rs, "approvers": sort({r.user | some r in rs; r.state == "APPROVED"})})

with_meta(key, v) := object.union(base, {"metadata": {key: v}})

of_rule(fs, rule) := {f | some f in fs; f.rule == rule}

rules(fs) := {f.rule | some f in fs}

the_one(fs, rule) := f if {
	s := of_rule(fs, rule)
	count(s) == 1
	some f in s
}

# --- the fixture -----------------------------------------------------------------------------

test_base_passes if {
	count(findings(base_pr)) == 0
}

test_default_config_base_passes if {
	count(deny) == 0 with input as {"manifest": base, "context": ctx(base_pr)}
}

test_default_config_needs_two_approvals if {
	fs := deny with input as {"manifest": base, "context": ctx(with_reviews([review("erwinmombay", "APPROVED")]))}
	rules(fs) == {"APPROVAL-MISSING"}
}

# --- no pull-request context -----------------------------------------------------------------

test_no_pull_request_no_findings if {
	count(findings(null)) == 0
}

test_no_pull_request_no_findings_with_default_config if {
	count(deny) == 0 with input as {"manifest": base, "context": ctx(null)}
}

# --- who wrote the code ---------------------------------------------------------------------

own_code_review(user) := object.union(review(user, "APPROVED"), {"own_commits_unreviewed": true})

test_a_reviewer_who_pushed_unapproved_commits_does_not_count if {
	fs := findings(with_reviews([review("erwinmombay", "APPROVED"), own_code_review("octocat")]))
	f := the_one(fs, "APPROVAL-MISSING")
	f.msg == "production releases need 2 approvals from reviewers other than the author; PR #1347 has 1 (erwinmombay); not counted: octocat (authored or pushed commits that no other reviewer approved)"
	contains(f.remediation, "needs another reviewer to approve after their last commit")
}

test_own_commits_count_without_two_person if {
	fs := findings_cfg(base, with_reviews([review("erwinmombay", "APPROVED"), own_code_review("octocat")]), cfg_with({"two_person": false}))
	count(fs) == 0
}

# --- a GitHub-mode run without a pull request -------------------------------------------------

no_pr := {"unavailable": "this run (event push) has no pull request, so no approval can be read"}

test_unavailable_blocks_a_release_that_needs_approvals if {
	fs := findings(no_pr)
	rules(fs) == {"APPROVAL-MISSING"}
	f := the_one(fs, "APPROVAL-MISSING")
	f.msg == "production releases need 2 approvals from reviewers other than the author and one from each of ml-reliability, but this run (event push) has no pull request, so no approval can be read"
	f.path == "metadata.environment"
}

test_unavailable_blocks_with_teams_only if {
	fs := findings_cfg(base, no_pr, cfg_with({"min": 0}))
	rules(fs) == {"APPROVAL-MISSING"}
}

test_unavailable_passes_what_needs_no_approval if {
	count(findings_cfg(base, no_pr, {"approvals": {"production": {"min": 0}}})) == 0
	count(findings_cfg(with_meta("environment", "dev"), no_pr, fixture_cfg)) == 0
}

test_pull_request_not_an_object_no_findings if {
	count(findings("1347")) == 0
}

test_no_context_at_all_no_findings if {
	count(deny) == 0 with input as {"manifest": base} with data.relgate.config as fixture_cfg
}

# --- APPROVAL-MISSING ------------------------------------------------------------------------

test_min_met if {
	count(of_rule(findings(base_pr), "APPROVAL-MISSING")) == 0
}

test_min_unmet if {
	f := the_one(findings(with_reviews([review("erwinmombay", "APPROVED")])), "APPROVAL-MISSING")
	f.path == "metadata.environment"
	f.msg == "production releases need 2 approvals from reviewers other than the author; PR #1347 has 1 (erwinmombay)"
	f.remediation == "ask 1 more reviewer(s) other than the author (Codertocat) to approve PR #1347"
}

test_no_reviews if {
	f := the_one(findings(with_reviews([])), "APPROVAL-MISSING")
	contains(f.msg, "PR #1347 has 0 (nobody)")
	contains(f.remediation, "ask 2 more reviewer(s)")
}

test_reviews_missing_is_no_approval if {
	f := the_one(findings(object.remove(base_pr, ["reviews"])), "APPROVAL-MISSING")
	contains(f.msg, "has 0 (nobody)")
}

test_reviews_not_a_list_is_no_approval if {
	f := the_one(findings(with_pr({"reviews": "APPROVED"})), "APPROVAL-MISSING")
	contains(f.msg, "has 0 (nobody)")
}

test_min_from_config if {
	pr := with_reviews([review("erwinmombay", "APPROVED")])
	count(findings_cfg(base, pr, cfg_with({"min": 1}))) == 0
	f := the_one(findings_cfg(base, base_pr, cfg_with({"min": 3})), "APPROVAL-MISSING")
	contains(f.msg, "need 3 approvals")
	contains(f.msg, "has 2 (erwinmombay, octocat)")
}

test_min_defaults_to_one if {
	cfg := {"approvals": {"production": {"two_person": true}}}
	count(findings_cfg(base, with_reviews([review("octocat", "APPROVED")]), cfg)) == 0
	f := the_one(findings_cfg(base, with_reviews([]), cfg), "APPROVAL-MISSING")
	contains(f.msg, "need 1 approval from")
}

test_min_zero_requires_nothing if {
	count(findings_cfg(base, with_reviews([]), {"approvals": {"production": {"min": 0}}})) == 0
}

test_commented_review_is_not_an_approval if {
	pr := with_reviews([review("erwinmombay", "APPROVED"), review("Codertocat", "COMMENTED")])
	f := the_one(findings(with_pr({"author": "octocat", "reviews": pr.reviews})), "APPROVAL-MISSING")
	contains(f.msg, "has 1 (erwinmombay)")
}

test_approvers_alone_do_not_count if {
	# `approvers` says two people approved, but no review is APPROVED: nothing counts.
	pr := with_pr({"reviews": [review("erwinmombay", "COMMENTED"), review("octocat", "PENDING")]})
	pr.approvers == ["erwinmombay", "octocat"]
	fs := findings(pr)
	contains(the_one(fs, "APPROVAL-MISSING").msg, "has 0 (nobody)")
	count(of_rule(fs, "APPROVAL-TEAM")) == 1
}

test_state_is_case_insensitive if {
	count(findings(with_reviews([review("erwinmombay", "approved"), review("octocat", "Approved")]))) == 0
}

test_same_reviewer_counts_once if {
	pr := with_reviews([review("erwinmombay", "APPROVED"), review("ErwinMombay", "APPROVED")])
	f := the_one(findings(pr), "APPROVAL-MISSING")
	contains(f.msg, "has 1 (")
}

# --- changes requested / dismissed after an approval ------------------------------------------

test_changes_requested_after_approval if {
	# octocat approved, then requested changes: the contract delivers the latest decisive state
	# only, and octocat is no longer an approver.
	pr := with_reviews([review("erwinmombay", "APPROVED"), review("octocat", "CHANGES_REQUESTED")])
	pr.approvers == ["erwinmombay"]
	f := the_one(findings(pr), "APPROVAL-MISSING")
	f.msg == "production releases need 2 approvals from reviewers other than the author; PR #1347 has 1 (erwinmombay); changes requested by octocat"
	contains(f.remediation, "address the changes octocat requested")
}

test_changes_requested_even_if_approvers_is_stale if {
	# A producer that left octocat in `approvers` does not make the cancelled approval count.
	pr := with_pr({"reviews": [review("erwinmombay", "APPROVED"), review("octocat", "CHANGES_REQUESTED")]})
	pr.approvers == ["erwinmombay", "octocat"]
	count(of_rule(findings(pr), "APPROVAL-MISSING")) == 1
}

test_dismissed_approval_does_not_count if {
	pr := with_reviews([review("erwinmombay", "APPROVED"), review("octocat", "DISMISSED")])
	f := the_one(findings(pr), "APPROVAL-MISSING")
	contains(f.msg, "has 1 (erwinmombay)")
}

# --- stale approvals -------------------------------------------------------------------------

test_stale_approval_counts_without_dismiss_stale if {
	pr := with_reviews([stale_review("erwinmombay", "APPROVED"), stale_review("octocat", "APPROVED")])
	count(findings(pr)) == 0
}

test_stale_approval_dismissed if {
	pr := with_reviews([review("erwinmombay", "APPROVED"), stale_review("octocat", "APPROVED")])
	fs := findings_cfg(base, pr, cfg_with({"dismiss_stale": true}))
	rules(fs) == {"APPROVAL-MISSING"}
	f := the_one(fs, "APPROVAL-MISSING")
	f.msg == "production releases need 2 approvals from reviewers other than the author; PR #1347 has 1 (erwinmombay); not counted: octocat (approved an older commit, and dismiss_stale is on)"
	contains(f.remediation, "approves the latest commit")
}

test_stale_team_approval_dismissed if {
	# The only team member's approval is stale: neither min nor the team is satisfied.
	pr := with_reviews([stale_review("erwinmombay", "APPROVED"), review("octocat", "APPROVED")])
	fs := findings_cfg(base, pr, cfg_with({"dismiss_stale": true}))
	rules(fs) == {"APPROVAL-MISSING", "APPROVAL-TEAM"}
	f := the_one(fs, "APPROVAL-TEAM")
	contains(f.msg, "not counted: erwinmombay (members whose approval is of an older commit, and dismiss_stale is on)")
}

test_stale_approval_dismissed_when_the_entry_omits_dismiss_stale if {
	# Code pushed after an approval is code nobody approved: an entry without dismiss_stale
	# dismisses stale approvals.
	pr := with_reviews([review("erwinmombay", "APPROVED"), stale_review("octocat", "APPROVED")])
	cfg := {"approvals": {"production": object.remove(fixture_cfg.approvals.production, ["dismiss_stale"])}}
	f := the_one(findings_cfg(base, pr, cfg), "APPROVAL-MISSING")
	contains(f.msg, "not counted: octocat (approved an older commit, and dismiss_stale is on)")
}

test_default_config_dismisses_stale_approvals if {
	pr := with_reviews([review("erwinmombay", "APPROVED"), stale_review("octocat", "APPROVED")])
	fs := deny with input as {"manifest": base, "context": ctx(pr)}
	f := the_one(fs, "APPROVAL-MISSING")
	contains(f.msg, "not counted: octocat (approved an older commit, and dismiss_stale is on)")
}

test_an_old_commit_is_stale_whatever_stale_says if {
	# A hand-written context cannot call an approval of an older commit fresh.
	lying := object.union(stale_review("octocat", "APPROVED"), {"stale": false})
	pr := with_reviews([review("erwinmombay", "APPROVED"), lying])
	f := the_one(findings_cfg(base, pr, cfg_with({"dismiss_stale": true})), "APPROVAL-MISSING")
	contains(f.msg, "not counted: octocat (approved an older commit, and dismiss_stale is on)")
}

test_stale_false_counts_with_dismiss_stale if {
	count(findings_cfg(base, base_pr, cfg_with({"dismiss_stale": true}))) == 0
}

# --- bot approvals ---------------------------------------------------------------------------

bot_review(user, state) := object.union(review(user, state), {"bot": true})

test_bot_approval_does_not_count_for_min if {
	# github-actions[bot] approving (a workflow allowed to approve pull requests) is no second
	# person: one counted approval of the two required.
	pr := with_reviews([review("erwinmombay", "APPROVED"), bot_review("github-actions[bot]", "APPROVED")])
	fs := findings(pr)
	rules(fs) == {"APPROVAL-MISSING"}
	f := the_one(fs, "APPROVAL-MISSING")
	f.msg == "production releases need 2 approvals from reviewers other than the author; PR #1347 has 1 (erwinmombay); not counted: github-actions[bot] (bot accounts, whose approval never counts)"
	contains(f.remediation, "a bot's approval does not count")
}

outsider_review(user, state, association) := object.union(review(user, state), {"association": association})

test_approvals_of_accounts_without_standing_do_not_count if {
	# Anyone can review a public repository: two sock puppets are not two approvals.
	pr := with_reviews([
		outsider_review("mallory-alt", "APPROVED", "NONE"),
		outsider_review("mallory-alt2", "APPROVED", "CONTRIBUTOR"),
		outsider_review("erwinmombay", "APPROVED", "MEMBER"),
	])
	f := the_one(findings(pr), "APPROVAL-MISSING")
	f.msg == "production releases need 2 approvals from reviewers other than the author; PR #1347 has 1 (erwinmombay); not counted: mallory-alt (NONE), mallory-alt2 (CONTRIBUTOR) (no write access to the repository)"
	contains(f.remediation, "write access")
	ok := with_reviews([
		outsider_review("octocat", "APPROVED", "COLLABORATOR"),
		outsider_review("erwinmombay", "APPROVED", "owner"),
	])
	count(of_rule(findings(ok), "APPROVAL-MISSING")) == 0
}

permission_review(user, association, permission) := object.union(
	outsider_review(user, "APPROVED", association),
	{"permission": permission},
)

test_approvals_of_members_with_read_access_only_do_not_count if {
	# An organization member or a collaborator may hold read (or triage) access alone: GitHub's
	# required reviews do not count their approval, and neither does relgate.
	pr := with_reviews([
		permission_review("reader", "MEMBER", "read"),
		permission_review("triager", "COLLABORATOR", "none"),
		permission_review("mallory-alt", "NONE", "read"),
		permission_review("erwinmombay", "MEMBER", "write"),
	])
	f := the_one(findings(pr), "APPROVAL-MISSING")
	f.msg == "production releases need 2 approvals from reviewers other than the author; PR #1347 has 1 (erwinmombay); not counted: mallory-alt (NONE), reader (permission read), triager (permission none) (no write access to the repository)"
	ok := with_reviews([
		permission_review("octocat", "COLLABORATOR", "maintain"),
		permission_review("erwinmombay", "OWNER", "ADMIN"),
	])
	count(of_rule(findings(ok), "APPROVAL-MISSING")) == 0
	# A read-only member satisfies no team either.
	team := object.union(
		with_reviews([
			permission_review("reader", "MEMBER", "read"),
			permission_review("erwinmombay", "MEMBER", "write"),
			permission_review("octocat", "MEMBER", "write"),
		]),
		{"teams": {"ml-reliability": {"org": "octo-org", "members": ["reader"]}}},
	)
	count(of_rule(findings(team), "APPROVAL-TEAM")) == 1
}

test_bot_approval_does_not_satisfy_a_team if {
	# Even listed as a member of the team, a bot's approval satisfies neither min nor the team.
	pr := object.union(
		with_reviews([review("octocat", "APPROVED"), bot_review("release-app[bot]", "APPROVED")]),
		{"teams": {"ml-reliability": {"org": "octo-org", "members": ["release-app[bot]"]}}},
	)
	fs := findings(pr)
	rules(fs) == {"APPROVAL-MISSING", "APPROVAL-TEAM"}
	f := the_one(fs, "APPROVAL-TEAM")
	f.msg == "production tier 0 releases need an approval from a member of ml-reliability; PR #1347 has none (counted approvals: octocat); not counted: release-app[bot] (bot accounts, whose approval never counts)"
}

test_bot_false_or_absent_counts if {
	pr := with_reviews([object.union(review("erwinmombay", "APPROVED"), {"bot": false}), review("octocat", "APPROVED")])
	count(findings(pr)) == 0
}

test_bot_approvals_alone_never_pass_min_one if {
	pr := with_reviews([bot_review("github-actions[bot]", "APPROVED")])
	fs := findings_cfg(base, pr, {"approvals": {"production": {"min": 1}}})
	rules(fs) == {"APPROVAL-MISSING"}
	contains(the_one(fs, "APPROVAL-MISSING").msg, "PR #1347 has 0 (nobody)")
}

test_bot_comment_is_not_listed if {
	# Only approvals are named as not counted.
	pr := with_reviews([review("erwinmombay", "APPROVED"), bot_review("github-actions[bot]", "COMMENTED")])
	not contains(the_one(findings(pr), "APPROVAL-MISSING").msg, "bot")
}

# --- APPROVAL-SELF ---------------------------------------------------------------------------

test_self_approval if {
	# PR 1347 is octocat's own (pulls-get), and octocat approved it (pulls-list-reviews).
	pr := with_pr({"author": "octocat"})
	fs := findings(pr)
	rules(fs) == {"APPROVAL-SELF", "APPROVAL-MISSING"}
	s := the_one(fs, "APPROVAL-SELF")
	s.path == "metadata.environment"
	s.msg == "octocat approved their own pull request (PR #1347); production releases need two people, and an author's approval never counts (approved by others: erwinmombay)"
	s.remediation == "dismiss octocat's own approval on PR #1347; the release needs 2 approvals from reviewers other than the author"
	m := the_one(fs, "APPROVAL-MISSING")
	m.msg == "production releases need 2 approvals from reviewers other than the author; PR #1347 has 1 (erwinmombay); not counted: octocat's own approval (the author)"
}

test_self_approval_is_case_insensitive if {
	fs := findings(with_pr({"author": " OctoCat "}))
	count(of_rule(fs, "APPROVAL-SELF")) == 1
	contains(the_one(fs, "APPROVAL-MISSING").msg, "has 1 (erwinmombay)")
}

test_self_approval_even_when_min_is_met if {
	pr := with_reviews([review("erwinmombay", "APPROVED"), review("octocat", "APPROVED"), review("Codertocat", "APPROVED")])
	rules(findings(pr)) == {"APPROVAL-SELF"}
}

test_two_person_off_still_never_counts_the_author if {
	fs := findings_cfg(base, with_pr({"author": "octocat"}), cfg_with({"two_person": false}))
	rules(fs) == {"APPROVAL-MISSING"}
}

test_author_comment_is_not_self_approval if {
	pr := with_reviews([review("erwinmombay", "APPROVED"), review("octocat", "APPROVED"), review("Codertocat", "COMMENTED")])
	count(findings(pr)) == 0
}

# --- APPROVAL-TEAM ---------------------------------------------------------------------------

test_team_satisfied if {
	count(of_rule(findings(base_pr), "APPROVAL-TEAM")) == 0
}

test_team_unsatisfied if {
	pr := with_teams({"ml-reliability": {"org": "octo-org", "members": ["other_user"]}})
	fs := findings(pr)
	rules(fs) == {"APPROVAL-TEAM"}
	f := the_one(fs, "APPROVAL-TEAM")
	f.item == "ml-reliability"
	f.path == "metadata.tier"
	f.msg == "production tier 0 releases need an approval from a member of ml-reliability; PR #1347 has none (counted approvals: erwinmombay, octocat)"
	f.remediation == "ask a member of ml-reliability to review and approve PR #1347"
}

test_team_with_no_members if {
	pr := with_teams({"ml-reliability": {"org": "octo-org", "members": []}})
	count(of_rule(findings(pr), "APPROVAL-TEAM")) == 1
}

test_team_member_who_is_the_author_does_not_satisfy if {
	pr := with_pr({"author": "erwinmombay", "reviews": [review("erwinmombay", "APPROVED"), review("octocat", "APPROVED"), review("other_user", "APPROVED")]})
	fs := findings(pr)
	rules(fs) == {"APPROVAL-SELF", "APPROVAL-TEAM"}
	contains(the_one(fs, "APPROVAL-TEAM").msg, "erwinmombay is a member but is the author, whose approval never counts")
}

test_team_membership_is_case_insensitive if {
	pr := with_teams({"ML-Reliability": {"org": "octo-org", "members": ["ErwinMombay"]}})
	count(findings(pr)) == 0
}

test_team_membership_unknown if {
	fs := findings(with_teams({}))
	f := the_one(fs, "APPROVAL-TEAM")
	f.item == "ml-reliability"
	contains(f.msg, "does not say who belongs to ml-reliability")
	contains(f.remediation, "read:org")
}

test_teams_missing_from_context if {
	count(of_rule(findings(object.remove(base_pr, ["teams"])), "APPROVAL-TEAM")) == 1
}

test_every_required_team_needs_an_approval if {
	cfg := cfg_with({"teams": {"0": ["ml-reliability", "octo-org/security"]}})
	pr := with_teams({
		"ml-reliability": {"org": "octo-org", "members": ["erwinmombay"]},
		"octo-org/security": {"org": "octo-org", "members": ["Codertocat"]},
	})
	fs := findings_cfg(base, pr, cfg)
	f := the_one(fs, "APPROVAL-TEAM")
	f.item == "octo-org/security"
	contains(f.remediation, "ask a member of octo-org/security")
	pr2 := with_teams({
		"ml-reliability": {"org": "octo-org", "members": ["erwinmombay"]},
		"octo-org/security": {"org": "octo-org", "members": ["octocat"]},
	})
	count(findings_cfg(base, pr2, cfg)) == 0
}

test_tier_without_team_requirement if {
	# Tier 2 needs no team: a PR without any team member passes, min still applies.
	m := with_meta("tier", 2)
	pr := with_teams({})
	count(findings_cfg(m, pr, fixture_cfg)) == 0
	fs := findings_cfg(m, with_reviews([review("octocat", "APPROVED")]), fixture_cfg)
	rules(fs) == {"APPROVAL-MISSING"}
}

test_tier_one_needs_the_team if {
	m := with_meta("tier", 1)
	fs := findings_cfg(m, with_teams({"ml-reliability": {"members": []}}), fixture_cfg)
	contains(the_one(fs, "APPROVAL-TEAM").msg, "production tier 1 releases")
}

# --- environments ----------------------------------------------------------------------------

test_environment_without_approval_config if {
	m := with_meta("environment", "staging")
	count(findings_cfg(m, with_reviews([]), fixture_cfg)) == 0
	count(findings_cfg(m, with_pr({"author": "octocat"}), fixture_cfg)) == 0
}

test_default_config_staging_requires_nothing if {
	count(deny) == 0 with input as {"manifest": with_meta("environment", "staging"), "context": ctx(with_reviews([]))}
}

test_approvals_config_null if {
	count(findings_cfg(base, with_reviews([]), {"approvals": null})) == 0
	count(findings_cfg(base, with_reviews([]), {})) == 0
}

test_staging_rule_applies_when_configured if {
	cfg := {"approvals": {"staging": {"min": 1, "teams": {"0": ["ml-reliability"]}}}}
	m := with_meta("environment", "staging")
	fs := findings_cfg(m, with_reviews([review("octocat", "APPROVED")]), cfg)
	rules(fs) == {"APPROVAL-TEAM"}
	count(findings_cfg(base, with_reviews([]), cfg)) == 0
}

# --- labels grant nothing --------------------------------------------------------------------

test_emergency_label_gives_no_bypass if {
	plain := object.union(with_teams({"ml-reliability": {"members": []}}), {"author": "octocat"})
	labelled := object.union(plain, {"labels": ["emergency-release"]})
	fs := findings(labelled)
	rules(fs) == {"APPROVAL-SELF", "APPROVAL-MISSING", "APPROVAL-TEAM"}
	fs == findings(plain)
}

test_no_pull_request_number if {
	f := the_one(findings(object.remove(with_reviews([]), ["number"])), "APPROVAL-MISSING")
	contains(f.msg, "the pull request has 0")
}

test_tier_given_as_a_string if {
	fs := findings_cfg(with_meta("tier", "0"), with_teams({}), fixture_cfg)
	contains(the_one(fs, "APPROVAL-TEAM").msg, "production tier 0 releases")
}

test_author_unknown if {
	# Without an author nobody's approval can be told to be the author's: none is discounted,
	# and no APPROVAL-SELF is claimed.
	pr := object.remove(with_reviews([review("erwinmombay", "APPROVED")]), ["author"])
	fs := findings(pr)
	rules(fs) == {"APPROVAL-MISSING"}
	contains(the_one(fs, "APPROVAL-MISSING").remediation, "(unknown author)")
}
