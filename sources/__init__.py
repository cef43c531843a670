"""dlt sources for unified accounting APIs: one package per provider, plus what they share (`common`)."""
