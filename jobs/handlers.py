"""The handler registry: find a python job's handler, describe its parameters, check kwargs.

``scripts:<name>`` is ``run`` in ``CRONTASK_SCRIPTS_DIR/<name>.py``. ``package.module:function``
must be a function marked with :func:`handler` in a module under one of
``CRONTASK_HANDLER_PACKAGES`` (or of the project's own, ``allow_builtin_module``): allowing a package
allows what it declares, not every function it happens to define, so that no API client can name
``os:system`` or a helper such as ``runs.retention:delete_old_runs``. Handlers log into their run
with ``task_log``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

from django.conf import settings
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from jobs.expressions import EXPRESSION_KEY, ExpressionError, is_expression, validate_expression
from jobs.upstream_refs import UPSTREAM_KEY, is_upstream_ref, ref_problem

# Modules of the project's own whose handlers are always allowed: the apps above jobs declare
# them (``allow_builtin_module``), as the runs app does the one of its system job cleanup-runs.
_builtin_modules: set[str] = set()
SCRIPT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # used with fullmatch: "$" lets "x\n" by
#: Set to True on a function by :func:`handler`; only such functions of a package are runnable.
HANDLER_ATTRIBUTE = "crontask_handler"
#: Set by ``handler(validate=…)``: the handler's own check of its arguments.
VALIDATE_ATTRIBUTE = "crontask_validate"
_log_sink: ContextVar[Callable[[str], None] | None] = ContextVar("crontask_task_log", default=None)


class HandlerError(ValueError):
    """The handler cannot be found, is not allowed, or its arguments do not fit it."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str | None  # int, str, float, bool, list, dict, datetime, date, or None when not annotated
    required: bool
    default: Any = None
    nullable: bool = False


#: A handler's own check of its arguments: given the arguments that have plain values (the ones
#: given as ``{"$expr": …}`` are known only when the job runs, and are left out), already of the
#: annotated types; returns ``{argument name: what is wrong with it}``, empty when all is well.
KwargsValidator = Callable[[dict[str, Any]], Mapping[str, str]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class HandlerInfo:
    handler: str
    name: str
    description: str
    is_async: bool
    parameters: tuple[Parameter, ...]
    accepts_any_kwargs: bool
    validate: KwargsValidator | None = field(default=None, compare=False, repr=False)


@overload
def handler(func: F, /) -> F: ...
@overload
def handler(*, validate: KwargsValidator | None = None) -> Callable[[F], F]: ...
def handler(func: F | None = None, /, *, validate: KwargsValidator | None = None) -> F | Callable[[F], F]:
    """Declare ``func`` runnable by python jobs: ``@handler`` or ``@handler(validate=check)``.

    Only marked functions of the packages in ``CRONTASK_HANDLER_PACKAGES`` can be named by a job;
    a package's other functions stay out of reach. The function itself is returned, only marked
    (no wrapper), so its signature, its docstring and whether it is ``async`` are what they were.
    ``validate`` (see :data:`KwargsValidator`) is called when a job is saved and before a manual
    run; the function should still refuse bad values itself, for kwargs that reach it otherwise.
    """

    def mark(target: F) -> F:
        setattr(target, HANDLER_ATTRIBUTE, True)
        setattr(target, VALIDATE_ATTRIBUTE, validate)
        return target

    return mark(func) if func is not None else mark


def allow_builtin_module(module_name: str) -> None:
    """Allow the handlers of a module of the project's own, as if its package were listed in
    ``CRONTASK_HANDLER_PACKAGES``; an app's ``ready()`` calls this."""
    _builtin_modules.add(module_name)


def handler_name(func: Callable[..., Any]) -> str:
    """The name a job gives ``func`` by: ``package.module:function``."""
    return f"{func.__module__}:{func.__name__}"


def task_log(*args: object) -> None:
    """Append ``[HH:MM:SS] args…`` to the current run's log output (like print)."""
    line = f"[{dt.datetime.now():%H:%M:%S}] {' '.join(str(a) for a in args)}"
    sink = _log_sink.get()
    if sink is None:
        print(line, flush=True)  # outside a run (a shell, a test): the console
    else:
        sink(line)


@contextmanager
def log_sink(sink: Callable[[str], None]) -> Iterator[None]:
    token = _log_sink.set(sink)
    try:
        yield
    finally:
        _log_sink.reset(token)


def resolve(handler: str) -> Callable[..., Any]:
    """The callable that ``handler`` names, or HandlerError saying why not."""
    module_name, _sep, function = handler.partition(":")
    if not function:
        raise HandlerError(
            _("%(handler)s: use 'scripts:<name>' or 'package.module:function'.") % {"handler": repr(handler)}
        )
    if module_name == "scripts":
        module = _load_script(function)
        target = getattr(module, "run", None)
    else:
        if not _package_allowed(module_name):
            raise HandlerError(
                _(
                    "%(module)s is not under a package listed in CRONTASK_HANDLER_PACKAGES; "
                    "use a script in the scripts folder or ask an operator to allow the package."
                )
                % {"module": repr(module_name)}
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise HandlerError(
                _("Cannot import %(module)s: %(error)s") % {"module": repr(module_name), "error": exc}
            ) from None
        target = getattr(module, function, None) if not function.startswith("_") else None
        # Only a function written in that module: a module's namespace also holds what it
        # imports (``subprocess.run``) and its classes (``runs.retention:Run``), and allowing a
        # package must not allow everything its modules happen to import.
        if callable(target) and not (inspect.isfunction(target) and target.__module__ == module_name):
            raise HandlerError(
                _("%(handler)s is not a function defined in %(module)s.")
                % {"handler": repr(handler), "module": module_name}
            )
        if callable(target) and getattr(target, HANDLER_ATTRIBUTE, False) is not True:
            raise HandlerError(
                _("%(handler)s is not marked as a handler (@jobs.handlers.handler).") % {"handler": repr(handler)}
            )
    if not callable(target):
        raise HandlerError(_("%(handler)s names no function.") % {"handler": repr(handler)})
    return target


def describe(handler: str) -> HandlerInfo:
    func = resolve(handler)
    module = sys.modules.get(func.__module__)
    info = getattr(module, "TASK_INFO", None) if handler.startswith("scripts:") else None
    info = info if isinstance(info, dict) else {}
    doc = inspect.getdoc(func) or inspect.getdoc(module) or ""
    signature = _signature(func)
    params = tuple(
        _parameter(p, hints=_hints(func))
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )
    return HandlerInfo(
        handler=handler,
        name=str(info.get("name") or handler.partition(":")[2]),
        description=str(info.get("description") or doc.split("\n\n")[0]),
        is_async=inspect.iscoroutinefunction(func),
        parameters=params,
        accepts_any_kwargs=any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()),
        validate=getattr(func, VALIDATE_ATTRIBUTE, None),
    )


def list_handlers() -> list[HandlerInfo]:
    """Every script in the scripts folder that loads; the ones that do not are left out."""
    found = []
    for path in sorted(Path(settings.CRONTASK_SCRIPTS_DIR).glob("*.py")):
        if path.stem.startswith("_") or not SCRIPT_NAME.fullmatch(path.stem):
            continue
        try:
            found.append(describe(f"scripts:{path.stem}"))
        except HandlerError:
            continue
    return found


def check_kwargs(handler: str, kwargs: dict[str, Any]) -> list[str]:
    """What is wrong with ``kwargs`` for ``handler``: one message per problem, naming the parameter."""
    return [message for _field, message in kwargs_problems(handler, kwargs)]


def kwargs_problems(handler: str, kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    """As :func:`check_kwargs`, each message with the field it is about: ``handler`` when the handler
    itself cannot be found or read, ``handler_kwargs`` when its arguments do not fit it."""
    try:
        info = describe(handler)
    except HandlerError as exc:
        return [("handler", str(exc))]
    known = {p.name: p for p in info.parameters}
    problems = []
    for name, value in kwargs.items():
        param = known.get(name)
        if param is None and not info.accepts_any_kwargs:
            problems.append(
                _("Unknown argument %(name)s: %(handler)s takes %(known)s.")
                % {"name": repr(name), "handler": handler, "known": ", ".join(known) or _("no arguments")}
            )
        elif param is None:
            problems += _expression_problems(name, value)  # taken by **kwargs: any type, but expressions run
        else:
            problems += _value_problems(param, value)
    problems += [
        _("Missing required argument %(name)s.") % {"name": repr(p.name)}
        for p in info.parameters
        if p.required and p.name not in kwargs
    ]
    if not problems and info.validate is not None:
        problems = _validator_problems(handler, info.validate, kwargs)
    return [("handler_kwargs", message) for message in problems]


def _validator_problems(handler: str, validate: KwargsValidator, kwargs: dict[str, Any]) -> list[str]:
    """The handler's own check (``handler(validate=…)``), on the arguments known before it runs."""
    plain = {name: value for name, value in kwargs.items() if not (is_expression(value) or is_upstream_ref(value))}
    try:
        found = validate(plain)
    except Exception as exc:  # noqa: BLE001 - a broken check is the handler's problem, not a 500
        # Reported on handler_kwargs, and not passed over as a handler that fails to load.
        return [
            _("Arguments could not be checked by %(handler)s: %(error)s")
            % {"handler": handler, "error": f"{type(exc).__name__}: {exc}"}
        ]
    return [
        _("Argument %(name)s: %(problem)s") % {"name": repr(name), "problem": message}
        for name, message in found.items()
    ]


def expression_problems(kwargs: dict[str, Any]) -> list[str]:
    """Every ``{"$expr": …}`` (and ``{"$upstream": …}``) in ``kwargs``, at any depth, that would be
    refused when it runs."""
    return [problem for name, value in kwargs.items() for problem in _expression_problems(name, value)]


def _expression_problems(name: str, value: Any) -> list[str]:
    """Check each expression in ``value`` as ``resolve_kwargs`` will find it when the job runs:
    nested in lists and objects too, so none reaches run time unchecked."""
    problems = []
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:  # not recursive: kwargs from an import can be nested deeper than the stack
        item, path = stack.pop()
        if is_expression(item):
            try:
                validate_expression(item[EXPRESSION_KEY])
            except ExpressionError as exc:
                problems.append(_argument_problem(name, path, str(exc)))
        elif is_upstream_ref(item):
            problem = ref_problem(item[UPSTREAM_KEY])
            if problem is not None:
                problems.append(_argument_problem(name, path, problem))
        elif isinstance(item, dict):
            stack.extend((child, f"{path}.{key}") for key, child in reversed(item.items()))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{index}]") for index, child in reversed(list(enumerate(item))))
    return problems


def _argument_problem(name: str, path: str, problem: str) -> str:
    """``Argument 'x': …``, or ``Argument 'x' at a[0].b: …`` for a value nested in it."""
    if not path:
        return _("Argument %(name)s: %(problem)s") % {"name": repr(name), "problem": problem}
    return _("Argument %(name)s at %(path)s: %(problem)s") % {
        "name": repr(name),
        "path": path.lstrip("."),
        "problem": problem,
    }


def _value_problems(param: Parameter, value: Any) -> list[str]:
    problems = _expression_problems(param.name, value)
    if is_expression(value) or is_upstream_ref(value):
        return problems  # its type is known only when it runs
    if problems:
        return problems
    if value is None and (param.nullable or param.type is None):
        return []
    if param.type is None or _fits(param.type, value):
        return []
    return [
        _("Argument %(name)s must be %(type)s, not %(given_type)s %(value)s.")
        % {
            "name": repr(param.name),
            "type": _TYPE_WORDS[param.type],
            "given_type": type(value).__name__,
            "value": repr(value)[:60],
        }
    ]


_TYPE_WORDS = {
    "int": gettext_lazy("an integer"),
    "float": gettext_lazy("a number"),
    "str": gettext_lazy("a string"),
    "bool": gettext_lazy("true or false"),
    "list": gettext_lazy("a list"),
    "dict": gettext_lazy("an object"),
    "datetime": gettext_lazy("an ISO 8601 date-time string"),
    "date": gettext_lazy("an ISO 8601 date string"),
}


def _fits(type_name: str, value: Any) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "list": lambda v: isinstance(v, list),
        "dict": lambda v: isinstance(v, dict),
        "datetime": lambda v: isinstance(v, str) and parse_datetime(v) is not None,
        "date": lambda v: isinstance(v, str) and parse_date(v) is not None,
    }
    return checks[type_name](value)


def _parameter(param: inspect.Parameter, *, hints: dict[str, Any]) -> Parameter:
    type_name, nullable = _type_name(hints.get(param.name, param.annotation))
    required = param.default is inspect.Parameter.empty
    default = None if required else param.default
    if not required and default is not None and not isinstance(default, int | float | str | bool | list | dict):
        default = repr(default)
    return Parameter(
        name=param.name,
        type=type_name,
        required=required,
        default=default,
        nullable=nullable or (not required and param.default is None),
    )


_NAMES = {
    int: "int",
    float: "float",
    str: "str",
    bool: "bool",
    list: "list",
    dict: "dict",
    dt.datetime: "datetime",
    dt.date: "date",
}


def _type_name(annotation: Any) -> tuple[str | None, bool]:
    """(type name, whether None is allowed) for the annotations handlers may use."""
    if annotation is inspect.Parameter.empty:
        return None, False
    if isinstance(annotation, str):  # an annotation that could not be evaluated
        text = annotation.replace("datetime.datetime", "datetime").replace("datetime.date", "date")
        nullable = "None" in text or "Optional" in text
        base = re.sub(r"\s*\|\s*None|Optional\[|\]", "", text).strip()
        return (base if base in _TYPE_WORDS else None), nullable
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        name = _type_name(args[0])[0] if len(args) == 1 else None
        return name, True
    origin = typing.get_origin(annotation) or annotation
    return _NAMES.get(origin), False


def _signature(func: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise HandlerError(_("Cannot read the signature of the handler: %(error)s") % {"error": exc}) from None


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable annotations fall back to their text
        return {}


def _package_allowed(module_name: str) -> bool:
    return module_name in _builtin_modules or any(
        module_name == package or module_name.startswith(package + ".")
        for package in settings.CRONTASK_HANDLER_PACKAGES
    )


_script_cache: dict[str, tuple[float, types.ModuleType]] = {}


def _load_script(name: str) -> types.ModuleType:
    """Load ``scripts/<name>.py`` by path (not from sys.path), reloading it when the file changes."""
    if not SCRIPT_NAME.fullmatch(name):
        raise HandlerError(_("%(name)s is not a valid script name.") % {"name": repr(name)})
    path = Path(settings.CRONTASK_SCRIPTS_DIR) / f"{name}.py"
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise HandlerError(
            _("No script %(name)s: %(file)s is not in the scripts folder.") % {"name": repr(name), "file": path.name}
        ) from None
    cached = _script_cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    module_name = f"crontask_scripts.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise HandlerError(_("Cannot load %(file)s.") % {"file": path.name})
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken script is reported, not raised
        sys.modules.pop(module_name, None)
        raise HandlerError(
            _("%(file)s fails to load: %(error)s") % {"file": path.name, "error": f"{type(exc).__name__}: {exc}"}
        ) from None
    _script_cache[str(path)] = (mtime, module)
    return module
