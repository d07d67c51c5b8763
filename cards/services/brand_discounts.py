"""The brand-card discount at the POS, and the brand's share of it given back on refunds and reversals."""
