"""Read side of brand billing: statements per brand and period, programme results."""
