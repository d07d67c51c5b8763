"""One query per metric (docs/metrics.md), grouped by report kind; each module registers its kind."""
