"""A person in the loop (issue 21): review.json (record), the review server (server, page), the queue of
events to review (queue) and a planted-truth reviewer for the demo (simulate)."""
