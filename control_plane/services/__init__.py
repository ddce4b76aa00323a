"""Domain operations shared by the REST API, the gateway and the scheduler."""
