"""Pickup vouchers (提货券): batches with unique codes, redemption in parts at any store, expiry."""
