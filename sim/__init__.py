"""Offline peers that speak only the wire protocols: a fake OpenAI Realtime service and a Twilio
call emulator. Nothing here imports the product."""
