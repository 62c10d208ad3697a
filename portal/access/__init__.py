"""Access workflow: requests, reviews with separation of duties, grants, revocation, expiry.

States and transitions are declared as data in :mod:`portal.access.states`.
"""
