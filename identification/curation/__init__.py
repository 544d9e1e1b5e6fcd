"""What curators do with candidates: decisions, merges and splits, the review queue."""
