"""Vietnamese (default) and English texts of the dashboard, and the per-request language."""

from __future__ import annotations

import functools
import logging

from flask import g, session

from protocol.words import COLOURS, DECISION_KINDS, OUTCOMES, reason_words

logger = logging.getLogger(__name__)

LANGUAGES: tuple[str, ...] = ("vi", "en")
DEFAULT_LANGUAGE = "vi"

# key -> (Vietnamese, English). Templates call t("key"); a missing key shows the key itself.
MESSAGES: dict[str, tuple[str, str]] = {
    "app_name": ("Chốt kiểm soát", "Checkpoint control"),
    "nav_overview": ("Tổng quan", "Overview"),
    "nav_devices": ("Thiết bị", "Devices"),
    "nav_admin_users": ("Tài khoản", "Users"),
    "nav_admin_devices": ("Đăng ký thiết bị", "Register devices"),
    "nav_admin_trust": ("Danh sách tin cậy", "Trust list"),
    "logout": ("Đăng xuất", "Log out"),
    "login": ("Đăng nhập", "Log in"),
    "username": ("Tên đăng nhập", "Username"),
    "password": ("Mật khẩu", "Password"),
    "login_failed": ("Sai tên đăng nhập hoặc mật khẩu.", "Wrong username or password."),
    "login_throttled": (
        "Quá nhiều lần đăng nhập sai. Vui lòng thử lại sau {seconds} giây.",
        "Too many failed logins. Please try again in {seconds} seconds.",
    ),
    "login_required": ("Vui lòng đăng nhập.", "Please log in."),
    "csrf_failed": (
        "Biểu mẫu đã hết hạn hoặc không hợp lệ. Vui lòng tải lại trang và thử lại.",
        "The form has expired or is invalid. Please reload the page and try again.",
    ),
    "forbidden": ("Bạn không có quyền xem trang này.", "You are not allowed to see this page."),
    "not_found": ("Không tìm thấy trang.", "Page not found."),
    "store_unavailable": ("Kho dữ liệu tạm thời không truy cập được. Trang sẽ thử lại sau ít phút.",
                          "The data store is unavailable right now. Please try again in a few minutes."),
    "bad_request": ("Yêu cầu không hợp lệ.", "Bad request."),
    "language": ("Ngôn ngữ", "Language"),
    "lang_vi": ("Tiếng Việt", "Tiếng Việt"),
    "lang_en": ("English", "English"),
    "today": ("Hôm nay", "Today"),
    "period": ("Khoảng thời gian", "Period"),
    "from": ("Từ ngày", "From"),
    "to": ("Đến ngày", "To"),
    "show": ("Xem", "Show"),
    "total": ("Tổng số", "Total"),
    # One name per colour across the system, the unit's headline words (protocol/words.py).
    **COLOURS,
    # Two rates, said plainly: yellow lets the person through but is listed among the reasons.
    "pass_rate": ("Tỷ lệ cho qua (xanh + vàng)", "Let through (green + yellow)"),
    "green_rate": ("Tỷ lệ hợp lệ đầy đủ (chỉ xanh)", "Fully valid (green only)"),
    "fail_rate": ("Tỷ lệ không đạt", "Fail rate"),
    "by_province": ("Theo tỉnh/thành", "By province"),
    "by_checkpoint": ("Theo chốt", "By checkpoint"),
    "province": ("Tỉnh/thành", "Province"),
    "district": ("Quận/huyện", "District"),
    "checkpoint": ("Chốt", "Checkpoint"),
    "checkpoints": ("Các chốt", "Checkpoints"),
    "chart_title": ("Kết quả theo thời gian", "Results over time"),
    "failure_reasons": ("Lý do không xanh (vàng và đỏ)", "Reasons for yellow and red"),
    "recent_reasons": ("Kết quả gần đây", "Recent results"),
    "reason": ("Lý do", "Reason"),
    "result": ("Kết quả", "Result"),
    "count": ("Số lượt", "Count"),
    "time": ("Thời gian", "Time"),
    "more_rows": ("… và {n} mục khác (xem API JSON để có đủ)", "… and {n} more (the JSON API has them all)"),
    "no_data": ("Chưa có dữ liệu.", "No data yet."),
    "units": ("Thiết bị tại chốt", "Units at this checkpoint"),
    "device": ("Thiết bị", "Device"),
    "state": ("Trạng thái", "State"),
    "online": ("Trực tuyến", "Online"),
    "offline": ("Mất kết nối", "Offline"),
    "unknown": ("Chưa báo cáo", "Not reported"),
    "last_seen": ("Lần cuối", "Last seen"),
    "software": ("Phần mềm", "Software"),
    "trust_version": ("Phiên bản tin cậy", "Trust version"),
    "trust_age": ("Tuổi danh sách", "Trust age"),
    "backlog": ("Hàng đợi", "Backlog"),
    "clock": ("Đồng hồ", "Clock"),
    "clock_ok": ("Đúng", "OK"),
    "clock_behind_bundle": ("Chậm hơn danh sách tin cậy", "Behind trust bundle"),
    "clock_behind_last_seen": ("Chậm hơn lần chạy trước", "Behind last run"),
    "fps": ("Khung hình/giây", "Camera fps"),
    "broker_node": ("Nút máy chủ MQTT", "Broker node"),
    "temperature": ("Nhiệt độ", "Temperature"),
    "last_known": ("Số liệu lần cuối nhận, {age} trước", "Last known values, {age} ago"),
    "alarms": ("Cảnh báo", "Alarms"),
    "no_alarms": ("Không có cảnh báo.", "No alarms."),
    "alarm_offline": ("{device} mất kết nối từ {since}", "{device} offline since {since}"),
    "alarm_never_seen": ("{device} chưa từng kết nối", "{device} has never reported"),
    "alarm_stale_trust": (
        "{device} dùng danh sách tin cậy cũ ({age})",
        "{device} runs a stale trust bundle ({age})",
    ),
    "alarm_clock": ("{device}: đồng hồ sai ({clock})", "{device}: wrong clock ({clock})"),
    "live": ("Trực tiếp", "Live"),
    "live_lost": ("Mất cập nhật trực tiếp, đang kết nối lại…", "Live updates lost, reconnecting…"),
    "role": ("Vai trò", "Role"),
    "role_admin": ("Quản trị", "Admin"),
    "role_supervisor": ("Giám sát", "Supervisor"),
    "role_viewer": ("Người xem", "Viewer"),
    "scope": ("Phạm vi", "Scope"),
    "scope_all": ("Toàn quốc", "Whole country"),
    "scope_district": ("Quận/huyện {code}", "District {code}"),
    "scope_checkpoint": ("Chốt {code}", "Checkpoint {code}"),
    "scope_help": (
        "Mỗi dòng một mục: all, province:<mã>, district:<mã>, checkpoint:<mã>",
        "One entry per line: all, province:<code>, district:<code>, checkpoint:<id>",
    ),
    "scope_required": (
        "Tài khoản giám sát hoặc người xem cần ít nhất một mục phạm vi.",
        "A supervisor or viewer needs at least one scope entry.",
    ),
    "create_user": ("Tạo tài khoản", "Create account"),
    "user_created": ("Đã tạo tài khoản {username}.", "Account {username} created."),
    "password_too_short": (
        "Mật khẩu phải có ít nhất {n} ký tự.",
        "The password must have at least {n} characters.",
    ),
    "add_device": ("Thêm thiết bị", "Add device"),
    "remove_device": ("Gỡ thiết bị", "Remove device"),
    "device_added": (
        "Đã thêm thiết bị {device}. Mật khẩu MQTT (chỉ hiện một lần): {password}",
        "Device {device} added. MQTT password (shown once): {password}",
    ),
    "device_removed": ("Đã gỡ thiết bị {device}.", "Device {device} removed."),
    "rotate_password": ("Đổi mật khẩu", "New password"),
    "password_rotated": (
        "Mật khẩu mới của {device} (chỉ hiện một lần, mật khẩu cũ hết hiệu lực): {password}",
        "New password of {device} (shown once; the old one no longer works): {password}",
    ),
    "checkpoint_name": ("Tên chốt", "Checkpoint name"),
    "upload_trust": ("Tải lên danh sách tin cậy", "Upload trust bundle"),
    "trust_file": ("Tệp danh sách (.json)", "Bundle file (.json)"),
    "trust_published": (
        "Đã kiểm tra và phát hành danh sách tin cậy phiên bản {version}.",
        "Trust bundle version {version} checked and published.",
    ),
    "trust_current": ("Phiên bản hiện tại", "Current version"),
    "trust_none": ("Chưa có danh sách tin cậy.", "No trust bundle yet."),
    "issued_at": ("Ngày phát hành", "Issued at"),
    "next_update": ("Cập nhật tiếp theo", "Next update"),
    "units_by_version": ("Thiết bị theo phiên bản", "Units by version"),
    "error": ("Lỗi", "Error"),
    "yes": ("Có", "Yes"),
    "no": ("Không", "No"),
    "seconds": ("{n} giây", "{n} s"),
    "minutes": ("{n} phút", "{n} min"),
    "hours": ("{n} giờ", "{n} h"),
    "days": ("{n} ngày", "{n} days"),
    "never": ("chưa bao giờ", "never"),
    "bad_date": ("Ngày không hợp lệ: {value}", "Invalid date: {value}"),
    "bad_period": ("Khoảng thời gian không hợp lệ.", "Invalid period."),
    "unavailable": ("Chức năng chưa sẵn sàng: {what}", "Not available: {what}"),
    # Officer decisions (issue 12)
    **DECISION_KINDS,
    "decisions": ("Quyết định của cán bộ", "Officer decisions"),
    "manual_checks": ("Kiểm tra thủ công", "Manual checks"),
    **OUTCOMES,
    "officer": ("Cán bộ", "Officer"),
    "decisions_title": ("Quyết định của cán bộ tại chốt", "Officers' decisions at checkpoints"),
    "gap_title": ("Thiếu dữ liệu tiêm chủng: đỏ được cho qua nhờ giấy xác nhận",
                  "Missing vaccination records: reds let through on paper proof"),
    "gap_help": ("Đỏ do thiếu mũi tiêm trên hệ thống mà cán bộ cho qua khi xem giấy xác nhận tiêm chủng: "
                 "nơi cần cập nhật dữ liệu.",
                 "Reds for a missing or incomplete record that officers let through on a paper vaccination "
                 "certificate: where the records need fixing."),
    "gap_reds": ("Đỏ do thiếu dữ liệu", "Reds for a record gap"),
    "gap_lifted": ("Cho qua nhờ giấy", "Lifted on paper"),
    "gap_share": ("Tỷ lệ", "Share"),
    "let_through_share": ("Tỷ lệ cho qua", "Let-through share"),
    "by_officer": ("Theo cán bộ", "By officer"),
    "nav_admin_officers": ("Cán bộ tại chốt", "Officers"),
    "add_officer": ("Thêm cán bộ / đổi mã PIN", "Add officer / set PIN"),
    "remove_officer": ("Thu hồi", "Revoke"),
    "officer_id": ("Mã cán bộ", "Officer id"),
    "officer_name": ("Họ tên", "Name"),
    "officer_role": ("Lực lượng", "Role"),
    "officer_pin": ("Mã PIN (4-8 chữ số)", "PIN (4-8 digits)"),
    "roster_version": ("Danh sách đã ký, bản", "Signed roster, version"),
    "officers_help": (
        "Mỗi thay đổi tạo một danh sách cán bộ mới, ký và gửi ngay tới các thiết bị của chốt. Mã PIN chỉ được lưu dưới dạng băm.",
        "Each change signs a new roster and sends it to the checkpoint's units at once. PINs are kept only as hashes.",
    ),
    "officer_saved": ("Đã lưu cán bộ {officer} tại {checkpoint} và gửi danh sách mới.",
                      "Officer {officer} at {checkpoint} saved; new roster sent."),
    "officer_removed": ("Đã thu hồi cán bộ {officer} tại {checkpoint} và gửi danh sách mới.",
                        "Officer {officer} at {checkpoint} revoked; new roster sent."),
    "role_police": ("Công an", "Police"),
    "role_health": ("Y tế", "Health"),
    "role_staff": ("Nhân viên", "Staff"),
    "alarm_let_through_checkpoint": (
        "{who}: cho qua {share} số quyết định ({n}), cao hơn nhiều so với tỉnh ({area})",
        "{who}: let through {share} of {n} decisions, far above the province's {area}",
    ),
    "alarm_let_through_officer": (
        "Cán bộ {who}: cho qua {share} số quyết định ({n}), cao hơn nhiều so với tỉnh ({area})",
        "Officer {who}: let through {share} of {n} decisions, far above the province's {area}",
    ),
}


@functools.cache
def _decision_reasons() -> dict[str, tuple[str, str]]:
    """Officers' decision reasons as the shipped policies word them (the ministry's data)."""
    try:
        from verifier.policy import builtin_policies
    except ImportError:
        return {}
    found: dict[str, tuple[str, str]] = {}
    for policy in builtin_policies().values():
        for rule in policy.decisions.reasons:
            found.setdefault(rule.code, (rule.label.vi, rule.label.en))
    return found


def current_language() -> str:
    """The language of this request: the user's stored choice, else the session's, else Vietnamese."""
    user = getattr(g, "user", None)
    if user is not None and user.language in LANGUAGES:
        return user.language
    lang = session.get("lang")
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def translate(key: str, lang: str | None = None, **values: object) -> str:
    """The text for `key` in `lang` (default: this request's), with `{name}` values filled in."""
    lang = lang or current_language()
    pair = MESSAGES.get(key)
    if pair is None:
        logger.warning("missing text key %r", key)
        return key
    text = pair[0] if lang == "vi" else pair[1]
    return text.format(**values) if values else text


def reason_text(code: str, lang: str | None = None) -> str:
    """The words for a verdict reason code (protocol/words.py, shared with the unit), or for an
    officer's decision reason (the policies' labels); unknown codes are shown as they are."""
    lang = lang or current_language()
    words = reason_words(code, lang)
    if words is not None:
        return words
    pair = _decision_reasons().get(code)
    if pair is None:
        return code
    return pair[0] if lang == "vi" else pair[1]


from dashboard.web.i18n_reports import REPORT_MESSAGES  # noqa: E402 - merged after the core texts

MESSAGES.update({k: v for k, v in REPORT_MESSAGES.items() if k not in MESSAGES})


def entry_words(entry: str, lang: str | None = None) -> str:
    """A scope or area entry as people say it: "province:25" -> "Phú Thọ (25)", "checkpoint:IC7"
    -> "Chốt IC7", "all" -> "Toàn quốc"; anything else as it is."""
    # Imported here, where it is used: provinces imports nothing of ours, but i18n is loaded first.
    from dashboard.web.data.provinces import province_label

    kind, _, code = entry.partition(":")
    if entry == "all":
        return translate("scope_all", lang)
    if kind == "province" and code:
        return province_label(code)
    if kind in ("district", "checkpoint") and code:
        return translate(f"scope_{kind}", lang, code=code)
    return entry


def tz_name(value: str) -> str:
    """A timezone as people say it: "giờ Việt Nam (UTC+7)" rather than "Asia/Ho_Chi_Minh"."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    try:
        offset = datetime.now(ZoneInfo(str(value))).utcoffset()
    except (KeyError, ValueError):
        return str(value)
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    utc = f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")
    if str(value) in ("Asia/Ho_Chi_Minh", "Asia/Saigon"):
        return translate("tz_vietnam", utc=utc)
    return f"{value} ({utc})"
