"""The Responses API (``POST /v1/responses`` and the stored responses' reads), through the
same path as chat: ``handler`` (the stages), ``request`` (what each path accepts),
``translate`` (a Responses request as a chat one, per route), ``answer`` (a chat answer as a
Response, and the output rules applied back to one), ``chain`` (``previous_response_id``),
``stored`` (GET, DELETE and input items). Streams are ``stream``'s."""
