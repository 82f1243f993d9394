package main

test_legacy_denied if {
	deny_legacy_name with input as {"manifest": {"metadata": {"name": "old-legacy"}}}
}
