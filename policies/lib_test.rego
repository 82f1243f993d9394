package relgate.lib

# Unit tests for relgate.lib: every value has its safe default on malformed input.

test_values_of_a_well_formed_manifest if {
	m := {"kind": "PromptRelease", "metadata": {"environment": "production", "tier": 1, "change_type": "feature"}}
	kind == "PromptRelease" with input as {"manifest": m}
	environment == "production" with input as {"manifest": m}
	change_type == "feature" with input as {"manifest": m}
	tier_key == "1" with input as {"manifest": m}
	tier_key == "2" with input as {"manifest": {"metadata": {"tier": "2"}}}
}

test_malformed_input_reads_as_empty if {
	manifest == {} with input as {"manifest": "not a mapping"}
	kind == "" with input as {"manifest": {"kind": 3}}
	environment == "" with input as {"manifest": {"metadata": {"environment": ["production"]}}}
	change_type == "" with input as {"manifest": {"metadata": null}}
	tier_key == "" with input as {"manifest": {"metadata": {"tier": true}}}
	cfg == {} with data.relgate.config as "not a mapping"
}

test_lists if {
	as_list(["a"]) == ["a"]
	as_list({"a"}) == {"a"}
	as_list(null) == []
	as_list("a") == []
	cfg_list(["x", "y"]) == ["z"] with data.relgate.config as {"x": {"y": ["z"]}}
	cfg_list(["x", "y"]) == [] with data.relgate.config as {"x": {"y": null}}
	cfg_list(["missing"]) == [] with data.relgate.config as {}
}

test_non_empty_string if {
	non_empty_string("a")
	not non_empty_string(" \t")
	not non_empty_string(1)
}
