"""Where the kit keeps its variables in the assistant's context.

`context.skills` has two fixed keys: `"actions skill"` (Actions; the session variables actions
read are `skill_variables`) and `"main skill"` (dialog; its context variables are `user_defined`).
A payload may carry no context at all (stateful sessions where the client sends none); then the
kit creates the layout of `SKILL_TYPE`. Everything else in the context is passed back untouched.
"""

from __future__ import annotations

from typing import Any

SKILLS = {
    "actions": ("actions skill", "skill_variables"),
    "dialog": ("main skill", "user_defined"),
}


def _child(parent: dict[str, Any], key: str, create: bool) -> dict[str, Any] | None:
    value = parent.get(key)
    if isinstance(value, dict):
        return value
    if not create or (value is not None and not isinstance(value, dict)):
        return None
    parent[key] = {}
    return parent[key]


def skill_type_of(payload: dict[str, Any], default: str = "actions") -> str:
    """"actions" or "dialog": the skill the payload's context uses, else `default`."""
    context = payload.get("context")
    skills = context.get("skills") if isinstance(context, dict) else None
    if isinstance(skills, dict):
        if "actions skill" in skills:
            return "actions"
        if "main skill" in skills:
            return "dialog"
    return default


def skill_variables(payload: dict[str, Any], default_skill_type: str = "actions",
                    create: bool = False) -> dict[str, Any] | None:
    """The dict of variables the assistant's skill reads (created on request), or None."""
    skill_key, variables_key = SKILLS[skill_type_of(payload, default_skill_type)]
    node: dict[str, Any] | None = payload
    for key in ("context", "skills", skill_key, variables_key):
        node = _child(node, key, create) if node is not None else None
    return node


def read_variable(payload: dict[str, Any], name: str, default_skill_type: str = "actions") -> Any:
    variables = skill_variables(payload, default_skill_type)
    return variables.get(name) if variables else None


def is_true(payload: dict[str, Any], name: str, default_skill_type: str = "actions") -> bool:
    """Whether an action set the variable to true: JSON true, or the text "true" (what an
    expression may leave); anything else, and no variable, is false."""
    value = read_variable(payload, name, default_skill_type)
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def write_variable(payload: dict[str, Any], name: str, value: Any,
                   default_skill_type: str = "actions") -> None:
    variables = skill_variables(payload, default_skill_type, create=True)
    if variables is not None:  # None only when the payload's context is not an object
        variables[name] = value


def global_system(payload: dict[str, Any]) -> dict[str, Any]:
    """`context.global.system` (user_id, turn_count, locale, ...) or {} when absent."""
    context = payload.get("context")
    global_ = context.get("global") if isinstance(context, dict) else None
    system = global_.get("system") if isinstance(global_, dict) else None
    return system if isinstance(system, dict) else {}


def locale_language(payload: dict[str, Any]) -> str | None:
    """`context.global.system.locale` as given ("es-ES"), a start-of-session hint, or None;
    `language.normalise_code` reads the language out of it."""
    locale = global_system(payload).get("locale")
    return locale if isinstance(locale, str) and locale.strip() else None
