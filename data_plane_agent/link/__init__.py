"""The agent's side of the link: enrollment, the mTLS stream, the durable outbox."""
