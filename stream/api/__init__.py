"""The read-only query API, ``rfm-stream serve`` (README, "Query API").

Its own process, so a burst of lookups never takes CPU from a worker; it only reads Redis.
``app`` assembles it, ``auth`` checks bearer tokens, ``errors`` turns every failure into
one JSON shape, ``routes`` answers, ``paging`` walks a segment, ``openapi`` describes it.
"""
