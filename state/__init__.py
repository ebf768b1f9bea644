"""Customer RFM state kept in Redis: key layout, Lua scripts, scoring and segments.

Pure modules (``model``, ``money``, ``scoring``, ``segments``, ``changes``) do no I/O;
``keys``, ``scripts`` and ``store`` are the only ones that talk to Redis.
"""
