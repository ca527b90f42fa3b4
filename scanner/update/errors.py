"""Why an update was refused or undone: one class per reason, each with a stable code and en/vi text."""

from __future__ import annotations


class UpdateError(Exception):
    """Base of every update error; `code` is stable and safe to report in the unit's status."""

    code = "update_failed"
    message_en = "The software update failed."
    message_vi = "Cập nhật phần mềm thất bại."

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(f"{self.code}: {detail}" if detail else f"{self.code}: {self.message_en}")


class UpdateUnavailable(UpdateError):
    """The update server could not be reached or did not answer in time; try again later."""

    code = "update_unreachable"
    message_en = "The update server cannot be reached; the unit keeps its current software."
    message_vi = "Không kết nối được máy chủ cập nhật; thiết bị giữ phần mềm hiện tại."


class UpdateRefused(UpdateError):
    """The update metadata or file failed a TUF check (signature, version, expiry, hash, length)."""

    code = "update_refused"
    message_en = "The update was refused: it is not signed and current as the ministry publishes it."
    message_vi = "Bản cập nhật bị từ chối: không đúng chữ ký hoặc không còn hiệu lực."


class MetadataExpired(UpdateRefused):
    """A role's metadata has expired: the server is frozen or replaying old files."""

    code = "update_expired"
    message_en = "The update channel is out of date (expired metadata); nothing was installed."
    message_vi = "Kênh cập nhật đã hết hạn (dữ liệu cũ); không cài đặt gì."


class MetadataRollback(UpdateRefused):
    """Metadata older than what the unit has already seen, or files of different versions mixed."""

    code = "update_rollback"
    message_en = "The update server offered older or mismatched files; nothing was installed."
    message_vi = "Máy chủ cập nhật đưa tệp cũ hoặc không khớp; không cài đặt gì."


class BadSignature(UpdateRefused):
    """Metadata not signed by the keys the unit's pinned root names."""

    code = "update_signature"
    message_en = "The update is not signed by the ministry's keys; nothing was installed."
    message_vi = "Bản cập nhật không có chữ ký của Bộ; không cài đặt gì."


class TargetMismatch(UpdateRefused):
    """The downloaded release does not have the length or hash the signed metadata gives."""

    code = "update_target_mismatch"
    message_en = "The downloaded release does not match its signed hash; it was discarded."
    message_vi = "Tệp tải về không khớp mã băm đã ký; đã bị loại bỏ."


class NotNewer(UpdateError):
    """The channel names a version not newer than the running one (a software downgrade)."""

    code = "update_not_newer"
    message_en = "The offered release is not newer than the running one."
    message_vi = "Bản phát hành được đưa ra không mới hơn bản đang chạy."


class BadRelease(UpdateError):
    """The release archive is not a well-formed unit release (manifest, paths, version)."""

    code = "update_bad_release"
    message_en = "The release archive is malformed; it was discarded."
    message_vi = "Gói phát hành bị lỗi cấu trúc; đã bị loại bỏ."


class GateFailed(UpdateError):
    """The new version did not pass its health gate in time; the unit switched back."""

    code = "update_gate_failed"
    message_en = "The new software failed its health check; the unit went back to the previous version."
    message_vi = "Phần mềm mới không qua kiểm tra sức khỏe; thiết bị đã quay về phiên bản trước."
