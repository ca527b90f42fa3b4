"""The error hierarchy of the verifier core: one class per reason, each with a stable code.

Every error carries `code` (stable, snake_case, safe to send off the unit), `message_en` and
`message_vi` (what a checkpoint officer reads). Messages never contain personal data.
"""

from __future__ import annotations


class VerificationError(Exception):
    """Base of every error the verifier core raises."""

    code = "invalid"
    message_en = "The certificate could not be verified."
    message_vi = "Không thể xác minh chứng nhận."

    def __init__(self, detail: str = "") -> None:
        # `detail` is for developers (tests, conformance output); it never holds personal data.
        self.detail = detail
        super().__init__(f"{self.code}: {detail}" if detail else f"{self.code}: {self.message_en}")


class MalformedCode(VerificationError):
    """The scanned text is not a readable health certificate."""

    code = "malformed"
    message_en = "This QR code is not a readable health certificate."
    message_vi = "Mã QR này không phải là chứng nhận y tế hợp lệ."


class InputTooLarge(MalformedCode):
    """The scanned text is longer than any real certificate."""

    code = "too_large"
    message_en = "The QR code holds far more data than a certificate can."
    message_vi = "Mã QR chứa quá nhiều dữ liệu so với một chứng nhận."


class PrefixError(MalformedCode):
    """The text does not start with the HC1: context prefix."""

    code = "prefix"
    message_en = "Not a COVID certificate (the QR code does not start like one)."
    message_vi = "Không phải mã chứng nhận COVID (mã QR không mở đầu như chứng nhận)."


class Base45Error(MalformedCode):
    """The text after the prefix is not valid Base45."""

    code = "base45"
    message_en = "The QR code is damaged (unreadable characters)."
    message_vi = "Mã QR bị hỏng (có ký tự không đọc được)."


class ZlibError(MalformedCode):
    """The Base45 data does not inflate as zlib."""

    code = "zlib"
    message_en = "The QR code is damaged (compressed data unreadable)."
    message_vi = "Mã QR bị hỏng (không giải nén được dữ liệu)."


class ZlibBomb(MalformedCode):
    """The compressed data inflates beyond the hard cap."""

    code = "zlib_bomb"
    message_en = "The QR code was refused: its data expands far beyond a real certificate."
    message_vi = "Mã QR bị từ chối: dữ liệu giải nén lớn bất thường."


class CoseError(MalformedCode):
    """The data is not a well-formed COSE_Sign1 message."""

    code = "cose"
    message_en = "The certificate's signed envelope is malformed."
    message_vi = "Phần ký số của chứng nhận bị sai định dạng."


class CborLimitsError(MalformedCode):
    """The CBOR data is nested too deeply or holds oversized arrays, maps or strings."""

    code = "cbor_limits"
    message_en = "The certificate data was refused: its structure is abnormally large or deep."
    message_vi = "Dữ liệu chứng nhận bị từ chối: cấu trúc lớn hoặc lồng sâu bất thường."


class AlgorithmUnsupported(VerificationError):
    """The COSE algorithm is not ES256 or PS256."""

    code = "alg_unsupported"
    message_en = "The certificate uses a signature algorithm that is not accepted."
    message_vi = "Chứng nhận dùng thuật toán chữ ký không được chấp nhận."


class KidMissing(VerificationError):
    """The COSE headers carry no key identifier."""

    code = "kid_missing"
    message_en = "The certificate does not say which key signed it."
    message_vi = "Chứng nhận không cho biết khóa nào đã ký."


class UnknownKid(VerificationError):
    """No signer in the trust store has this key identifier."""

    code = "kid_unknown"
    message_en = "The certificate was signed by an issuer not in the trust list."
    message_vi = "Chứng nhận được ký bởi đơn vị không có trong danh sách tin cậy."

    def __init__(self, kid: bytes | None = None, detail: str = "") -> None:
        self.kid = kid
        super().__init__(detail or (f"kid {kid.hex()}" if kid else ""))


class BadSignature(VerificationError):
    """The signature does not match the data and the signer's key."""

    code = "signature"
    message_en = "The signature is invalid: the certificate is forged or altered."
    message_vi = "Chữ ký không hợp lệ: chứng nhận bị giả mạo hoặc sửa đổi."


class SignerExpired(VerificationError):
    """The document signer certificate had expired at the validation time."""

    code = "dsc_expired"
    message_en = "The issuer's signing key has expired."
    message_vi = "Khóa ký của đơn vị cấp đã hết hạn."


class SignerNotYetValid(VerificationError):
    """The document signer certificate was not yet valid at the validation time."""

    code = "dsc_not_yet_valid"
    message_en = "The issuer's signing key is not valid yet (check the unit's clock)."
    message_vi = "Khóa ký của đơn vị cấp chưa có hiệu lực (kiểm tra đồng hồ thiết bị)."


class KeyUsageError(VerificationError):
    """The signer is not allowed to sign this type of certificate."""

    code = "key_usage"
    message_en = "The issuer's key may not sign this type of certificate."
    message_vi = "Khóa của đơn vị cấp không được phép ký loại chứng nhận này."


class CwtError(MalformedCode):
    """The CWT claims are missing or malformed."""

    code = "cwt"
    message_en = "The certificate's contents are malformed."
    message_vi = "Nội dung chứng nhận sai định dạng."


class CwtExpired(VerificationError):
    """The CWT exp claim is before the validation time."""

    code = "cwt_expired"
    message_en = "The certificate has expired."
    message_vi = "Chứng nhận đã hết hạn."


class CwtNotYetValid(VerificationError):
    """The CWT iat claim is after the validation time."""

    code = "cwt_not_yet_valid"
    message_en = "The certificate is not valid yet (check the unit's clock)."
    message_vi = "Chứng nhận chưa có hiệu lực (kiểm tra đồng hồ thiết bị)."


class SchemaError(VerificationError):
    """The DCC payload does not follow the DCC JSON schema or value sets."""

    code = "schema"
    message_en = "The certificate's health data is incomplete or invalid."
    message_vi = "Dữ liệu y tế trong chứng nhận không đầy đủ hoặc không hợp lệ."

    def __init__(self, path: str = "", detail: str = "") -> None:
        self.path = path
        self.problem = detail
        super().__init__(f"{path}: {detail}" if path else detail)

    def within(self, key: object) -> "SchemaError":
        """The same error one level up: `key` prefixed to its path."""
        return type(self)(f"/{key}{self.path}", self.problem)


class SchemaVersionError(SchemaError):
    """The DCC declares a schema version of a major version this unit does not know."""

    code = "schema_version"
    message_en = "The certificate uses a format version this unit does not know."
    message_vi = "Chứng nhận dùng phiên bản định dạng mà thiết bị chưa hỗ trợ."


class ValueSetError(SchemaError):
    """A coded field holds a code outside its DCC value set (verifier.valuesets).

    The messages name the field and the code (a code is not personal data); `field` is e.g.
    `v.mp`, `value` the code as shown (None when a required code is missing).
    """

    code = "value_set"
    message_en = "The certificate holds a medical code this unit does not know."
    message_vi = "Chứng nhận chứa mã y tế mà thiết bị không nhận biết."

    def __init__(self, path: str = "", detail: str = "", *, field: str = "", value: str | None = None,
                 label_en: str = "", label_vi: str = "") -> None:
        super().__init__(path, detail)
        self.field = field
        self.value = value
        if field and value is not None:
            self.message_en = f"Unknown {label_en} code “{value}” ({field}): not in this unit's value sets."
            self.message_vi = f"Mã {label_vi} “{value}” ({field}) không có trong danh mục của thiết bị."
        elif field:
            self.message_en = f"The certificate names no {label_en} ({field}), which it must."
            self.message_vi = f"Chứng nhận thiếu {label_vi} ({field}), là thông tin bắt buộc."


class Revoked(VerificationError):
    """The certificate is on the revocation list."""

    code = "revoked"
    message_en = "The certificate has been revoked by the issuer."
    message_vi = "Chứng nhận đã bị đơn vị cấp thu hồi."

    def __init__(self, hash_type: str = "", detail: str = "") -> None:
        self.hash_type = hash_type
        super().__init__(detail or hash_type)


class PolicyError(VerificationError):
    """The policy could not be evaluated on this certificate."""

    code = "policy_error"
    message_en = "The checkpoint rules could not be applied to this certificate."
    message_vi = "Không áp dụng được quy định của chốt cho chứng nhận này."


class InternalError(VerificationError):
    """An unexpected fault inside the verifier (a bug); the result is red, never a crash."""

    code = "internal"
    message_en = "The certificate could not be checked (internal error)."
    message_vi = "Không kiểm tra được chứng nhận (lỗi nội bộ)."


class FormatUnsupported(VerificationError):
    """A health certificate of a known format this unit cannot verify yet (VDS-NC, DIVOC)."""

    code = "format_unsupported"
    message_en = "A health certificate of a format this unit cannot check yet: check it by other means."
    message_vi = "Chứng nhận y tế thuộc định dạng thiết bị chưa kiểm tra được: hãy kiểm tra bằng cách khác."


class ShcChunked(MalformedCode):
    """A SMART Health Card split over several QR codes (the deprecated chunked form)."""

    code = "shc_chunked"
    message_en = "A SMART Health Card split over several QR codes: ask for the single-QR version."
    message_vi = "Thẻ SMART Health Card bị chia thành nhiều mã QR: hãy yêu cầu bản một mã QR."


class ShcNumeric(MalformedCode):
    """The digits after shc:/ are not valid numeric encoding (odd count, a pair above 77)."""

    code = "shc_numeric"
    message_en = "The QR code is damaged (bad SMART Health Card digits)."
    message_vi = "Mã QR bị hỏng (dãy số của SMART Health Card không hợp lệ)."


class JwsError(MalformedCode):
    """The SMART Health Card is not a well-formed compact JWS, or its header is wrong."""

    code = "jws"
    message_en = "The QR code is damaged (unreadable SMART Health Card)."
    message_vi = "Mã QR bị hỏng (không đọc được SMART Health Card)."


class JsonLimitsError(MalformedCode):
    """The decoded JSON is nested too deeply or is not JSON."""

    code = "json_limits"
    message_en = "The certificate's data is malformed."
    message_vi = "Dữ liệu của chứng nhận không đúng định dạng."


class IssuerKeyMismatch(VerificationError):
    """The key that signed the card belongs to another issuer than the card's `iss`."""

    code = "issuer_mismatch"
    message_en = "The card was signed with another issuer's key: it is forged."
    message_vi = "Thẻ được ký bằng khóa của đơn vị khác: thẻ giả mạo."


class ShcNotYetValid(VerificationError):
    """The card's `nbf` is after the validation time."""

    code = "shc_not_yet_valid"
    message_en = "The card is dated in the future: check the unit's clock or the card."
    message_vi = "Thẻ ghi ngày trong tương lai: hãy kiểm tra đồng hồ thiết bị hoặc thẻ."


class ShcExpired(VerificationError):
    """The card's `exp` is before the validation time."""

    code = "shc_expired"
    message_en = "The card has expired."
    message_vi = "Thẻ đã hết hạn."


class FhirError(SchemaError):
    """The card's FHIR bundle lacks the patient or holds no COVID-19 immunization we can read."""

    code = "fhir"
    message_en = "The card's content is not a readable COVID-19 vaccination record."
    message_vi = "Nội dung thẻ không phải hồ sơ tiêm chủng COVID-19 đọc được."
