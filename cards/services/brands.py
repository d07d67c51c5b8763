"""Brand partners and brand card programmes: start through approval, eligible SKU lists from Excel."""
