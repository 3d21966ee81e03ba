"""The web app: the distributor portal (server-rendered pages) and the token API (`/api/v1`).

- `app.py` builds the FastAPI application on an App; `server.py` runs it under uvicorn
  (`shortage-watch web`, and in a thread beside `shortage-watch run` when web.enabled).
- `security.py` holds sessions, CSRF and `require_role(role)`: the accounts layer is
  general (an account has a role: `distributor` now, `officer` for the bureau dashboard).
  A new page declares `user: WebUser = Depends(require_role("officer"))`, renders with
  `portal.render(request, "page.html", ...)` (which passes `csrf`, `user`, `L(zh, en)`),
  checks `check_csrf` on every POST, and reads through store/portal_queries.py: no SQL here.
- `api.py` is the token API; `portal.py` the distributor pages; `labels.py` the words.
"""
