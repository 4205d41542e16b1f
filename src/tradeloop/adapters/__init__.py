"""Venue adapters: one folder per venue with its feed, broker, symbol mapping and wire parsing.

Venue names appear only here.
"""
