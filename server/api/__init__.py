"""HTTP handlers: thin; they check input and rights, then call the domain modules."""
