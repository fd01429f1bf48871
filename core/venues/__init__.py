"""Adapters of the ``core.venue.Venue`` port: Coinbase (REST + user channel) and Paper."""
