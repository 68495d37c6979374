"""Pure decoders of the wire formats the server's doors accept: bytes in, records out, errors
naming the field. No web framework here; the server wires each decoder to a route."""
