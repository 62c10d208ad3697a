"""Access policies: the tiers of each dataset, loaded strictly, resolved default-deny."""
