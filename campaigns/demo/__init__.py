"""Demo data of campaigns for `seed_demo` (one module per area; each is safe to run twice)."""
