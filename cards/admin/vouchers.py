"""Admin screens for pickup vouchers: suppliers, products, batches, vouchers with their ledger, reports."""
