"""A helper module dropped into versions/: it declares no revision, so it is no migration of the chain."""

ORDER_STATUSES = ("created", "paid", "cancelled")
