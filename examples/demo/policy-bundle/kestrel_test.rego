package main

import rego.v1

release(environment, ticket) := {"manifest": {"metadata": {"environment": environment, "ticket": ticket}}}

test_known_project_passes if {
	count(deny) == 0 with input as release("production", "AIR-1") with data.kestrel.jira_projects as ["AIR"]
}

test_unknown_project_is_denied if {
	some finding in deny with input as release("production", "PRC-230") with data.kestrel.jira_projects as ["AIR"]
	finding.rule == "KESTREL-TICKET"
}

test_staging_is_not_checked if {
	count(deny) == 0 with input as release("staging", "X-1") with data.kestrel.jira_projects as ["AIR"]
}
