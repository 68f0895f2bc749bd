"""OpenAI's Responses API (`/v1/responses`): its wire format over the one turn launch path."""
