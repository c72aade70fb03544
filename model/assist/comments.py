"""``comment_required``: does the telecom CRM's rule book demand a comment for this conversation, and why.

The rules are those of the seed document (000_…, «Комментарии в Interaction необходимо вносить в
случаях»), numbered as there, plus the «Сорвался/тишина» category, whose definition asks for the
client's reason in the comment field:

1. ``claim`` — any claim (complaint about a charge, the network, a service that does not work);
2. ``expert_transfer`` — a transfer to experts, whatever the topic;
3. ``agreement`` — a complex case with an agreement, a benefit, a discount or a loyalty compensation;
4. ``internet_mms`` — any question on GPRS: internet, WAP, MMS;
5. ``identified_action`` — the operator acted on a topic that needs identification: tariff change,
   service on/off, bill delivery address, bill or detail to e-mail/fax, PIN/PUK, secret code;
6. ``legal_entity_block`` — blocking a legal entity's number;
7. ``refusal`` — information refused (what and why);
8. ``asis_transfer`` — a transfer to ASIS, so that the next operator does not offer it again;
9. ``dropped_call`` — the call broke off after the client stated the question.

Rules read the text (client and operator turns apart) and the predicted labels. Marketplace
conversations (the Ozon rules ask for a comment only "when needed") get ``required: False``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from model.conversation.record import Interaction

CLAIM_LABELS = {
    "За что списание?",
    "Не поступили деньги",
    "Не могу выйти в интернет",
    "Низкая скорость. Почему?",
    "Не работает услуга",
    "Не могу позвонить/сбой связи",
    "Не работает Self Service",
    "Не могу подкл./откл.",
    "Не могу перейти на ТП",
}
INTERNET_LABELS = {"Не могу выйти в интернет", "Низкая скорость. Почему?", "Настройки"}

_CLAIM_CLIENT = re.compile(
    r"недовол|безобрази|возмут|жалоб|претензи|верните|вернуть деньги|обман|развод|не подключал|не заказывал|"
    r"ничего не (?:подключал|включал|заказывал|подписывал)|сняли|списали|списание|сколько можно|"
    r"не работает|не ловит|нет связи|связи нет|нет сети|пропадает|пропали|не грузит|не приходят|не пришли|"
    r"не поступил|не могу|не получается|до сих пор|бардак|никто не (?:приехал|позвонил|перезвонил)|взяли еще"
)
_CLAIM_OPERATOR = re.compile(r"претензи|перерасчет|приношу извинения|приносим извинения")
_TRANSFER = re.compile(r"переключ\w{0,20}|перевож\w{0,20}|переведу|передаю|передам|передано|соединю")
_EXPERT = re.compile(r"специалист|эксперт|отдел|коллег|старш|технич|руководител|менеджер")
_ASIS = re.compile(r"\bасис\b|автоинформатор|автоматическ\w{1,20} систем|голосов\w{1,20} (?:меню|подсказк)")
_AGREEMENT = re.compile(
    r"компенсац|в качестве исключения|доверительн\w{1,20} плат|скидк|льгот|перерасчет|"
    r"договорились|бонус\w{0,20} (?:на|в) (?:счет|баланс)|начисл\w{1,20} \w{0,20} ?(?:компенсац|бонус)"
)
_INTERNET = re.compile(
    r"интернет|\bgprs\b|\bwap\b|\bmms\b|\bммс\b|гигабайт|\bгиг\w{0,20}|мегабайт|раздач\w{1,20} интернет|"
    r"точк\w{1,20} доступа|\bapn\b|модем"
)
_IDENT_ASK = re.compile(r"\bфио\b|фамили|паспорт|дат\w{1,20} рождения|кодов\w{1,20} слов|\bинн\b")
_IDENT_ACTIONS = [
    (
        "tariff change",
        re.compile(
            r"тариф\w{0,20} (?:сменен|изменен|изменил|поменял)|(?:перевел\w{0,20}|переведу|перевожу|"
            r"сменил\w{0,20}|сменю|поменял\w{0,20}) (?:вас |номер )?на (?:тариф|друг\w{1,20} тариф)|"
            r"переход \w{0,20} ?выполн|выполню переход|тариф (?:активен|подключен)"
        ),
    ),
    (
        "service on/off",
        re.compile(
            r"\b(?:от|под)ключил[аи]?\b|\b(?:от|под)ключу\b|\b(?:от|под)ключаю\b|\b(?:от|под)ключено\b|"
            r"услуг\w{1,20} (?:от|под)ключен"
        ),
    ),
    (
        "bill delivery address",
        re.compile(
            r"адрес\w{0,20} доставки счет\w{0,20} (?:изменен|измен)|(?:изменил\w{0,20}|поменял\w{0,20}|"
            r"добавил\w{0,20}) (?:адрес|корпус)|восстановил\w{0,20} доставку"
        ),
    ),
    (
        "bill or detail to e-mail/fax",
        re.compile(
            r"(?:отправил\w{0,20}|отправлю|выслал\w{0,20}|направил\w{0,20}|отправлен\w{0,20}) "
            r"(?:\w{1,30} ){0,3}(?:детализац|сч[её]т|отч[её]т|документ|выписк)|"
            r"(?:отправил\w{0,20}|выслал\w{0,20}) на (?:адрес|почту|e-?mail|электронн)"
        ),
    ),
    ("PIN/PUK", re.compile(r"(?:пин|пук|пак)[- ]?код\w{0,20} \w{0,20}|записывайте (?:пак|пук|пин)")),
    ("secret code", re.compile(r"секретн\w{1,20} код")),
]
_LEGAL = re.compile(r"\bооо\b|\bинн\b|юр\.? ?лиц|юрлиц|организаци|корпоративн|компани\w{1,20} [«\"]?\w{1,20}|\bип\b")
_BLOCK = re.compile(r"заблокир|блокир")
_REFUSAL = re.compile(
    r"(?:могу|можем) (?:предоставить|сообщить|назвать|дать) только|не (?:могу|можем|имею права) "
    r"(?:\w{1,30} ){0,2}(?:предоставить|сообщить|сообщать|назвать|раскрыть|дать|сказать)|(?:к сожалению )?"
    r"(?:нет|никак)[,.]? нужно (?:подойти|обратиться) в офис|только (?:самому )?владельц|"
    r"отказ\w{0,20} в предоставлени|не предоставля\w{1,20}|персональные данные|без (?:нотариальной )?"
    r"доверенности не (?:получится|можем|могу)"
)
_DROPPED = re.compile(r"вас не слышно|не слышу вас|связь прервалась|алло\W{0,20}$")

# The taxonomy these rules were written for: its contact-reason task, in the telecom domain. Another
# contact centre's taxonomy (no such task) gets no comment hint at all, rather than telecom rules
# firing on its conversations («не могу» → «Претензия»).
RULES_TASK, RULES_DOMAIN = "reason2", "telecom"


def rules_apply(taxonomy) -> bool:
    """Whether this rule book belongs to ``taxonomy``: it has the task ``reason2`` of domain telecom."""
    task = taxonomy.tasks.get(RULES_TASK) if taxonomy is not None else None
    return task is not None and task.domain == RULES_DOMAIN


def comment_required(
    interaction: Interaction,
    labels: Mapping[str, str | None] | None = None,
    domain: str | None = None,
) -> dict[str, Any]:
    """``{"required": bool, "reasons": [{"rule", "seed_rule", "because"}]}`` for one conversation.

    ``labels`` are the decided (or top) labels per task; ``domain`` the conversation's domain when
    known ("telecom", "marketplace"). A marketplace conversation never requires one by these rules.
    """
    labels = {k: v for k, v in (labels or {}).items() if v}
    if domain == "marketplace" or (
        domain is None and "reason2" not in labels and set(labels) & {"topic", "resolution"}
    ):
        return {"required": False, "reasons": []}
    client = " ".join(_clean(t.text) for t in interaction.turns if t.role == "client")
    operator = " ".join(_clean(t.text) for t in interaction.turns if t.role == "operator")
    last_ops = [_clean(t.text) for t in interaction.turns if t.role == "operator"][-2:]
    everything = f"{client} {operator}"
    reason2 = labels.get("reason2")
    reasons: list[dict[str, Any]] = []

    def add(rule: str, seed_rule: int | None, because: str) -> None:
        reasons.append({"rule": rule, "seed_rule": seed_rule, "because": because})

    if m := (_CLAIM_CLIENT.search(client) or _CLAIM_OPERATOR.search(operator)):
        add("claim", 1, f"claim in the conversation («{m.group(0)}»): note actions done and advice given")
    elif reason2 in CLAIM_LABELS:
        add("claim", 1, f"contact reason «{reason2}» is a claim: note actions done and advice given")
    transfer = _first(_TRANSFER, operator, window=60)
    if transfer and _ASIS.search(transfer):
        add("asis_transfer", 8, "transferred to ASIS: say so, so that the next operator does not transfer again")
    elif transfer and _EXPERT.search(transfer):
        add("expert_transfer", 2, f"transferred to experts («{transfer.strip()[:60]}»): note the extra questions asked")
    elif reason2 == "Переключение/направление":
        add("expert_transfer", 2, f"contact reason «{reason2}»: note where the client was transferred")
    if m := _AGREEMENT.search(operator):
        add("agreement", 3, f"agreement, benefit or compensation («{m.group(0)}»): note what, how much and why")
    if m := _INTERNET.search(everything):
        add("internet_mms", 4, f"GPRS/internet/MMS question («{m.group(0)}»): note the phone model and what was done")
    elif reason2 in INTERNET_LABELS:
        add("internet_mms", 4, f"contact reason «{reason2}»: note the phone model and what was done")
    identified = bool(_IDENT_ASK.search(operator))
    done = [name for name, pattern in _IDENT_ACTIONS if pattern.search(operator)]
    if done:
        add(
            "identified_action",
            5,
            f"the operator did {', '.join(done)}: note the identification "
            f"({'done' if identified else 'not seen in the conversation'}) and the actions or data given",
        )
    if _BLOCK.search(everything) and _LEGAL.search(everything):
        add("legal_entity_block", 6, "legal entity's number blocked: note contact phone, warning and one-time password")
    if m := _REFUSAL.search(operator):
        add("refusal", 7, f"information refused («{m.group(0)}»): note what was refused and why")
    if reason2 == "Сорвался/тишина" or (last_ops and all(_DROPPED.search(t) for t in last_ops) and client):
        add("dropped_call", None, "the call broke off: note the client's question (category «Сорвался/тишина»)")
    return {"required": bool(reasons), "reasons": reasons}


def _clean(text: str) -> str:
    return " ".join(text.lower().replace("ё", "е").split())


def _first(pattern: re.Pattern, text: str, window: int) -> str | None:
    """The text right after the first match of ``pattern`` (what was transferred where)."""
    m = pattern.search(text)
    return text[m.start() : m.end() + window] if m else None
