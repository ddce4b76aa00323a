"""The data-plane REST API (/v1), served by the agent inside the customer's network."""
