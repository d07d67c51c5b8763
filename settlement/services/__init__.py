"""The writes of settlement: clearing, periods and their lock, reconciliation, finance files.

Importing the package registers the approval actions of its modules.
"""
