"""The HTTP gateway: source adapters, authentication, and the durable producer."""
