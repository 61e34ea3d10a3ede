"""Every string the console shows, per language: Hebrew first (right to left), English beside it. The
templates read them as `t.<key>`; a key missing from a language is an error (tests/test_console_pages.py)."""
from __future__ import annotations

LANGUAGES = ("he", "en")
RIGHT_TO_LEFT = {"he"}

STRINGS: dict[str, dict[str, str]] = {
    "he": {
        "title": "קולברידג' — מסוף מפעיל", "login": "כניסה", "logout": "יציאה", "email": "דוא\"ל", "password": "סיסמה",
        "login_wrong": "דוא\"ל או סיסמה שגויים", "login_locked": "יותר מדי ניסיונות — החשבון נעול זמנית, נסו שוב מאוחר יותר",
        "live": "שיחות חיות", "history": "היסטוריה", "leads": "לידים", "businesses": "עסקים", "dashboard": "לוח מדדים",
        "retention": "שמירת מידע", "audit": "יומן פעולות", "language_toggle": "English",
        "business": "עסק", "all": "הכל", "any": "כלשהו", "yes": "כן", "no": "לא", "from_date": "מתאריך", "to_date": "עד תאריך",
        "end_reason": "סיבת סיום", "transferred": "הועברה לנציג", "lead_saved": "נשמר ליד", "fallback": "מסלול חלופי",
        "search_word": "חיפוש מילה בתמלול", "filter": "סינון", "page": "עמוד", "of": "מתוך", "previous": "הקודם",
        "next": "הבא", "calls_found": "שיחות נמצאו", "call": "שיחה", "caller": "מתקשר", "assistant": "בינה מלאכותית",
        "started": "התחלה", "duration": "משך", "live_now": "חיה", "no_calls": "אין שיחות",
        "metrics": "מדדים", "prompt_layers": "שכבות ההנחיה", "webhooks": "התראות Webhook", "tool_calls": "קריאות לכלים",
        "timeline": "ציר זמן", "recording": "הקלטה", "no_recording": "אין הקלטה לשיחה זו", "download_wav": "הורדת WAV",
        "download_json": "הורדת JSON", "transcript": "תמלול", "filler": "מילת מילוי", "backchannel": "תגובת הקשבה",
        "turn": "תור דיבור", "interrupted": "נקטע", "heard": "נשמע עד", "state": "מצב", "attempts": "ניסיונות",
        "export_csv": "ייצוא CSV", "fields": "שדות", "created": "נוצר", "no_leads": "אין לידים",
        "edit": "עריכה", "business_file": "קובץ העסק (TOML)", "preview_diff": "הצגת השינויים", "save": "שמירה",
        "saved": "נשמר", "no_changes": "אין שינויים", "versions": "גרסאות", "rollback": "שחזור גרסה זו", "who": "מי",
        "when": "מתי", "note": "הערה", "prompt": "ההנחיה שהשיחה תקבל", "classify": "סיווג מבע",
        "classify_hint": "הקלידו מה שמתקשר אמר", "classify_button": "סווג", "invalid_file": "הקובץ אינו תקין",
        "calls_per_day": "שיחות ליום", "leads_per_day": "לידים ליום", "calls": "שיחות", "answered": "נענו",
        "handoff": "העברה", "answered_at": "נענתה", "whisper": "נאמר לנציג", "segments": "מקטעים עם הסוכן", "callback": "חזרה למתקשר",
        "callback_scheduled": "מתוזמנת", "callback_dialing": "בחיוג", "callback_done": "בוצעה", "callback_failed": "נכשלה",
        "callback_dnc": "ברשימת אל-תתקשר",
        "shed": "נדחו בעומס", "median_duration": "משך חציוני (שניות)", "latency_p50": "השהיית מענה p50 (מ\"ש)",
        "latency_p95": "השהיית מענה p95 (מ\"ש)", "barge_in_rate": "התפרצויות לשיחה", "filler_rate": "שיעור מילות מילוי",
        "underruns": "חוסרי שמע", "show": "הצגה", "day": "יום",
        "no_control_plane": "מישור הבקרה אינו פועל — אין מידע על שיחות חיות (kolbridge actors start)",
        "phase": "שלב", "speaking": "מי מדבר", "barge_ins": "התפרצויות", "realtime_link": "חיבור Realtime",
        "hangup": "ניתוק", "hangup_confirm": "לנתק את השיחה?", "hangup_sent": "בקשת הניתוק נשלחה לעובד",
        "transfer_now": "העברה לנציג עכשיו", "transfer_confirm": "להעביר את השיחה לקו הנציגים עכשיו?",
        "transfer_sent": "בקשת ההעברה נשלחה לעובד", "no_transfer_line": "לעסק אין קו נציגים מוגדר",
        "no_live_calls": "אין שיחות חיות", "worker": "עובד",
        "erase_number": "מחיקת כל המידע של מספר מתקשר", "erase_confirm": "למחוק לצמיתות את כל השיחות של המספר?",
        "erase": "מחיקה", "erased": "נמחקו שיחות", "purge_now": "הרצת ניקוי לפי מדיניות השמירה",
        "purged": "נוקו שיחות", "retention_days": "ימי שמירה", "keep_forever": "נשמר לתמיד",
        "action": "פעולה", "target": "יעד", "detail": "פרטים", "not_found": "לא נמצא", "forbidden": "אסור",
        "back": "חזרה", "call_ended": "השיחה הסתיימה", "speaking_ai": "הבינה המלאכותית", "speaking_caller": "המתקשר",
        "speaking_both": "שניהם", "caller_language": "שפת המתקשר",
    },
    "en": {
        "title": "kolbridge — operator console", "login": "Sign in", "logout": "Sign out", "email": "Email",
        "password": "Password", "login_wrong": "Wrong email or password",
        "login_locked": "Too many attempts — the account is locked for a while; try again later",
        "live": "Live calls", "history": "History", "leads": "Leads", "businesses": "Businesses", "dashboard": "Dashboard",
        "retention": "Retention", "audit": "Audit log", "language_toggle": "עברית",
        "business": "Business", "all": "All", "any": "Any", "yes": "Yes", "no": "No", "from_date": "From",
        "to_date": "To", "end_reason": "End reason", "transferred": "Transferred", "lead_saved": "Lead saved",
        "fallback": "Fallback", "search_word": "Search the transcripts for a word", "filter": "Filter", "page": "Page",
        "of": "of", "previous": "Previous", "next": "Next", "calls_found": "calls found", "call": "Call",
        "caller": "Caller", "assistant": "AI", "started": "Started", "duration": "Duration", "live_now": "live",
        "no_calls": "No calls", "metrics": "Metrics", "prompt_layers": "Prompt layers", "webhooks": "Webhook deliveries",
        "tool_calls": "Tool calls", "timeline": "Timeline", "recording": "Recording",
        "no_recording": "No recording of this call", "download_wav": "Download WAV", "download_json": "Download JSON",
        "transcript": "Transcript", "filler": "filler", "backchannel": "backchannel", "turn": "turn",
        "interrupted": "interrupted", "heard": "heard until", "state": "State", "attempts": "Attempts",
        "export_csv": "Export CSV", "fields": "Fields", "created": "Created", "no_leads": "No leads",
        "edit": "Edit", "business_file": "Business file (TOML)", "preview_diff": "Show the changes", "save": "Save",
        "saved": "Saved", "no_changes": "No changes", "versions": "Versions", "rollback": "Roll back to this version",
        "who": "Who", "when": "When", "note": "Note", "prompt": "The prompt a call gets", "classify": "Classify an utterance",
        "classify_hint": "Type what a caller said", "classify_button": "Classify", "invalid_file": "The file is not valid",
        "calls_per_day": "Calls per day", "leads_per_day": "Leads per day", "calls": "Calls", "answered": "Answered",
        "handoff": "Handoff", "answered_at": "answered", "whisper": "told the human", "segments": "Segments with the agent", "callback": "Callback",
        "callback_scheduled": "scheduled", "callback_dialing": "dialling", "callback_done": "done", "callback_failed": "failed",
        "callback_dnc": "do not call",
        "shed": "Shed", "median_duration": "Median duration (s)", "latency_p50": "Answer latency p50 (ms)",
        "latency_p95": "Answer latency p95 (ms)", "barge_in_rate": "Barge-ins per call", "filler_rate": "Filler rate",
        "underruns": "Underruns", "show": "Show", "day": "Day",
        "no_control_plane": "The control plane is not running — no live call information (kolbridge actors start)",
        "phase": "Phase", "speaking": "Speaking", "barge_ins": "Barge-ins", "realtime_link": "Realtime link",
        "hangup": "Hang up", "hangup_confirm": "Hang up this call?", "hangup_sent": "Hang-up sent to the worker",
        "transfer_now": "Transfer now", "transfer_confirm": "Transfer this call to the human line now?",
        "transfer_sent": "Transfer sent to the worker", "no_transfer_line": "The business has no human line configured",
        "no_live_calls": "No live calls", "worker": "Worker",
        "erase_number": "Erase everything of one caller number", "erase_confirm": "Erase every call of this number for good?",
        "erase": "Erase", "erased": "calls erased", "purge_now": "Run the retention purge now",
        "purged": "calls purged", "retention_days": "Retention days", "keep_forever": "kept",
        "action": "Action", "target": "Target", "detail": "Detail", "not_found": "Not found", "forbidden": "Forbidden",
        "back": "Back", "call_ended": "The call has ended", "speaking_ai": "the AI", "speaking_caller": "the caller",
        "speaking_both": "both", "caller_language": "Caller's language",
    },
}


# how calls end (calls.end_reason), shown in words; an unlisted reason is shown as it is stored
END_REASONS: dict[str, dict[str, str]] = {
    "he": {"twilio_stop": "המתקשר ניתק", "agent_hangup": "הבינה המלאכותית סיימה", "transferred": "הועברה לנציג",
           "admin_hangup": "נותקה מהמסוף", "admin_transfer": "הועברה לנציג מהמסוף", "silence_timeout": "שקט ממושך",
           "max_duration": "הגבלת זמן",
           "realtime_unavailable": "הבינה המלאכותית לא זמינה", "server_shutdown": "השרת נסגר",
           "worker_lost": "התהליך אבד"},
    "en": {"twilio_stop": "caller hung up", "agent_hangup": "AI ended it", "transferred": "transferred",
           "admin_hangup": "hung up from the console", "admin_transfer": "transferred from the console",
           "silence_timeout": "long silence", "max_duration": "time limit",
           "realtime_unavailable": "AI unavailable", "server_shutdown": "server shut down", "worker_lost": "worker lost"},
}


def end_reason(lang: str, code: str) -> str:
    return END_REASONS.get(lang, {}).get(code, code)


def strings(lang: str) -> dict[str, str]:
    return STRINGS.get(lang, STRINGS["he"])


def direction(lang: str) -> str:
    return "rtl" if lang in RIGHT_TO_LEFT else "ltr"
