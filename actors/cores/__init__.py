"""Sans-I/O cores: pure classes `handle(message, now) -> actions`. No sockets, asyncio or thespian."""
