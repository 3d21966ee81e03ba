"""`web` (serve the portal and API), `accounts …` and `tokens …` (run on the server by the operator)."""

from __future__ import annotations

import argparse
import json

from shortage_watch.commands import CommandError, Context
from shortage_watch.commands.officer import table
from shortage_watch.domain.labels import zh_en

ACCOUNT_STATES = {"disabled": "已停用 disabled", "initial": "初始密码 initial password", "active": "有效 active"}


def register(sub: argparse._SubParsersAction) -> None:
    web = sub.add_parser("web", help="serve the distributor portal and the API (web.host:web.port)")
    web.add_argument("--host", help="bind address (default web.host)")
    web.add_argument("--port", type=int, help="port (default web.port)")
    web.set_defaults(handler=web_command)

    accounts = sub.add_parser("accounts", help="web accounts: add-distributor, add-officer, list, disable, reset-password")
    acc = accounts.add_subparsers(dest="accounts_command", metavar="ACTION")
    acc.required = True
    add = acc.add_parser("add-distributor", help="an account for a distributor of the directory; prints a one-time password")
    add.add_argument("code", help="the distributor's code in the directory")
    add.add_argument("--name", help="account name (default: the code); a second clerk needs another name")
    add.set_defaults(handler=accounts_add_distributor)
    officer = acc.add_parser("add-officer", help="an account for a bureau officer of a region; prints a one-time password")
    officer.add_argument("name", help="account name, e.g. ningde-ybj-wang")
    officer.add_argument("--region", required=True, metavar="CODE", help="the region the officer oversees (it sees every region below it)")
    officer.add_argument("--role", required=True, choices=("insurance", "health"), help="insurance bureau (医保局) or health commission (卫健委)")
    officer.add_argument("--email", help="the officer's mail address")
    officer.set_defaults(handler=accounts_add_officer)
    lst = acc.add_parser("list", help="every account")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=accounts_list)
    disable = acc.add_parser("disable", help="disable an account: its sessions end, its tokens answer 403")
    disable.add_argument("name")
    disable.set_defaults(handler=accounts_disable)
    reset = acc.add_parser("reset-password", help="a new one-time password (to be changed at the next login)")
    reset.add_argument("name")
    reset.set_defaults(handler=accounts_reset_password)

    tokens = sub.add_parser("tokens", help="API tokens: create, list, revoke")
    tok = tokens.add_subparsers(dest="tokens_command", metavar="ACTION")
    tok.required = True
    create = tok.add_parser("create", help="a new API token for a distributor's account; printed once")
    create.add_argument("--distributor", required=True, metavar="CODE")
    create.add_argument("--name", default="token", help="what the token is for (e.g. ERP)")
    create.add_argument("--json", action="store_true", help='print {"token": "...", "id": ...}')
    create.set_defaults(handler=tokens_create)
    tlist = tok.add_parser("list", help="every token (never the secret)")
    tlist.add_argument("--json", action="store_true")
    tlist.set_defaults(handler=tokens_list)
    revoke = tok.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(handler=tokens_revoke)


def web_command(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.web.server import WebServer

    web = ctx.settings.web
    host, port = args.host or web.host, args.port if args.port is not None else web.port
    if not 0 <= port <= 65535:
        raise CommandError(zh_en(f"--port {port} 不是有效端口（0–65535）", f"--port {port} is not a port (0-65535)"))
    app = ctx.ready_app()
    try:
        server = WebServer(app, host, port)
    except OSError as exc:
        raise CommandError(zh_en(f"门户无法在 {host}:{port} 上监听", f"web: cannot listen on {host}:{port}: {exc.strerror or exc}"),
                           exit_code=1) from None
    except ValueError as exc:  # an unusable session secret file
        raise CommandError(zh_en("会话密钥文件不可用", str(exc))) from None
    print(f"门户 portal: {server.address}/  ·  接口文档 API docs: {server.address}/docs  （按 Ctrl-C 停止 / Ctrl-C stops）", flush=True)
    server.serve_until_signal()
    return 0


def _now(ctx: Context):  # noqa: ANN202
    return ctx.app.clock.now()


def accounts_add_distributor(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.accounts import AccountError, add_account

    app = ctx.ready_app()
    party = app.directory.distributor(args.code)
    if party is None:
        raise CommandError(f"配送企业编码 {args.code} 不在目录中 / distributor {args.code!r} is not in the directory "
                           "(directory.distributors)")
    name = args.name or args.code
    try:
        user, password = add_account(app.sessions, name=name, role="distributor", party_code=args.code, now=_now(ctx))
    except AccountError as exc:
        raise CommandError(str(exc)) from None
    print(f"账户 account: {user.name}  ({args.code} {getattr(party, 'name', '')})")
    print(f"初始密码 initial password: {password}")
    print("首次登录须修改密码；此密码不会再次显示 / it must be changed at first login and is not shown again")
    print(f"门户 portal: {ctx.settings.web.public_url}/login")
    return 0


def accounts_add_officer(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.domain.directory import is_valid_email
    from shortage_watch.services.accounts import AccountError, add_account

    app = ctx.ready_app()
    region = app.directory.region(args.region)
    if region is None:
        raise CommandError(f"行政区划代码 {args.region} 不在目录中 / region {args.region!r} is not in the directory (directory.regions)")
    if args.email is not None and not is_valid_email(args.email):
        raise CommandError(f"邮箱地址无效：{args.email} / --email {args.email!r} is not a mail address")
    try:
        user, password = add_account(app.sessions, name=args.name, role="officer", party_code=None, region_code=region.code, bureau=args.role,
                                     email=args.email, now=_now(ctx))
    except AccountError as exc:
        raise CommandError(str(exc)) from None
    bureau = "医疗保障局" if args.role == "insurance" else "卫生健康委员会"
    print(f"账户 account: {user.name}  ({region.name}{bureau} {region.code})")
    print(f"初始密码 initial password: {password}")
    print("首次登录须修改密码；此密码不会再次显示 / it must be changed at first login and is not shown again")
    print(f"监测平台 dashboard: {ctx.settings.web.public_url}/bureau/")
    return 0


def accounts_list(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.accounts import list_accounts

    rows = list_accounts(ctx.ready_app().read_sessions)
    if args.json:
        print(json.dumps([{"name": r.name, "role": r.role, "party_code": r.party_code, "disabled": r.disabled,
                           "must_change_password": r.must_change_password,
                           "last_login_at": r.last_login_at.isoformat() if r.last_login_at else None} for r in rows],
                         ensure_ascii=False))
        return 0
    if not rows:
        print(zh_en("还没有账户（shortage-watch accounts add-distributor CODE）", "no accounts (shortage-watch accounts add-distributor CODE)"))
        return 0
    print("\n".join(table(
        ["账户 name", "角色 role", "单位 party", "状态 state", "上次登录 last login (UTC)"],
        [(r.name, r.role, r.party_code, ACCOUNT_STATES["disabled" if r.disabled else "initial" if r.must_change_password else "active"],
          r.last_login_at.strftime("%Y-%m-%d %H:%M") if r.last_login_at else None) for r in rows],
    )))
    return 0


def accounts_disable(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.accounts import AccountError, disable_account

    try:
        disable_account(ctx.ready_app().sessions, args.name, _now(ctx))
    except AccountError as exc:
        raise CommandError(str(exc)) from None
    print(f"已停用 disabled: {args.name}")
    return 0


def accounts_reset_password(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.accounts import AccountError, reset_password

    try:
        password = reset_password(ctx.ready_app().sessions, args.name, _now(ctx))
    except AccountError as exc:
        raise CommandError(str(exc)) from None
    print(f"新的初始密码 new initial password for {args.name}: {password}")
    print("下次登录须修改；此密码不会再次显示 / it must be changed at the next login and is not shown again")
    return 0


def tokens_create(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.accounts import AccountError, create_token, distributor_account_id

    app = ctx.ready_app()
    try:
        row, secret = create_token(app.sessions, account_id=distributor_account_id(app.read_sessions, args.distributor), name=args.name,
                                   now=_now(ctx), actor="operator")
    except AccountError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps({"token": secret, "id": row.id}))
    else:
        print(f"令牌 token #{row.id} for {row.account} ({row.party_code}): {secret}")
        print("此令牌只显示这一次 / this token is shown once only")
    return 0


def tokens_list(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.accounts import list_tokens

    rows = list_tokens(ctx.ready_app().read_sessions)
    if args.json:
        print(json.dumps([{"id": r.id, "account": r.account, "distributor": r.party_code, "name": r.name,
                           "starts_with": r.prefix, "created_at": r.created_at.isoformat(),
                           "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
                           "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None} for r in rows],
                         ensure_ascii=False))
        return 0
    if not rows:
        print(zh_en("还没有令牌", "no tokens"))
        return 0
    print("\n".join(table(
        ["编号 id", "账户 account", "配送企业 distributor", "用途 name", "开头 starts with", "状态 state"],
        [(r.id, r.account, r.party_code, r.name, r.prefix + "…",
          f"已撤销 revoked {r.revoked_at:%Y-%m-%d}" if r.revoked_at else ACCOUNT_STATES["active"]) for r in rows],
    )))
    return 0


def tokens_revoke(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.accounts import AccountError, revoke_token

    try:
        revoke_token(ctx.ready_app().sessions, args.id, now=_now(ctx), actor="operator")
    except AccountError as exc:
        raise CommandError(str(exc)) from None
    print(f"已撤销 revoked token #{args.id}")
    return 0
