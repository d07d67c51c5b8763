"""Brand statements and programme results in the admin."""
