"""The pure correlation core: no Kafka, Redis or asyncio in here. Time is always passed in."""
