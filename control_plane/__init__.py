"""The hosted, multi-tenant control plane: metadata, identities, schedules. Never customer data."""
