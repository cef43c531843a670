"""Local stand-ins for the providers' APIs: real HTTP servers on 127.0.0.1 with seeded data.

They share no code with the sources they serve, so a bug in a client's models cannot hide behind a
sandbox built from the same models.
"""
