"""CLIP BPE tokeniser and class sets (codes, phrases, descriptions, seen/unseen)."""
