#!/bin/sh
# Regenerates the Hebrew demo clips (8 kHz μ-law, raw, no header) with espeak-ng and sox.
# Debian: apt-get install -y espeak-ng sox
# Texts carry no niqqud: espeak-ng 1.51 (Debian 12) reads the points aloud by their Unicode names.
set -eu
cd "$(dirname "$0")/clips"
make() {  # name text [voice]
  espeak-ng -v "${3:-he}" -s 150 -w "/tmp/kolbridge-$1.wav" "$2"
  sox "/tmp/kolbridge-$1.wav" -r 8000 -c 1 -t ul "$1.ul"
  printf '%s\n' "$2" > "$1.txt"
  rm -f "/tmp/kolbridge-$1.wav"
}
make greeting "שלום, הגעתם למוסך הדגמה. איך אפשר לעזור?"
make question "שלום, אני רוצה לקבוע תור לטיפול ברכב מחר בבוקר, יש לכם מקום?"
make answer "בשמחה. יש לנו מקום מחר בתשע בבוקר או ביום רביעי באחת בצהריים. מה מתאים לך?"
make long_answer "הטיפול השנתי כולל החלפת שמן ומסננים, בדיקת בלמים, בדיקת צמיגים ואורות, ובדיקה ממוחשבת של המנוע. זה לוקח בערך שעתיים, ואפשר לחכות אצלנו או להשאיר את הרכב."
make alternative "בסדר גמור. יש גם מקום ביום חמישי בעשר בבוקר. זה מתאים?"
make goodbye "תודה רבה, להתראות."
make no "לא!"
make filler "אמממ"
make human "תעביר אותי בבקשה לנציג אנושי"
make handoff "בסדר, אני מעבירה אותך עכשיו לנציג. רגע אחד."
# listening (issue 9): a sustained real interruption, a lone backchannel, and steady sounds that are not turns
make interrupt "רגע, לא, אני מתכוון למשהו אחר לגמרי, אני צריך את הרכב כבר היום"
make ken "כן"
espeak-ng -v he -s 60 -w /tmp/kolbridge-hmm.wav "אממממממממ"  # an elongated filler, ~1.9 s
sox /tmp/kolbridge-hmm.wav -r 8000 -c 1 -t ul hmm.ul && printf '%s\n' "אממממ" > hmm.txt
# a closed-mouth hum (~1.8 s): a 115 Hz glottal-like tone, low-passed, with a slow 4 Hz wobble
sox -n -r 8000 -c 1 -t ul hum.ul synth 1.8 sawtooth 115 lowpass 600 lowpass 600 tremolo 4 8 fade 0.08 1.8 0.15 gain -6
printf '%s\n' "ממממ" > hum.txt
# a breath (~1.7 s): band-limited pink noise swelling and fading
sox -n -r 8000 -c 1 -t ul breath.ul synth 1.7 pinknoise band -n 1200 1500 fade q 0.6 1.7 0.7 gain -6
printf '%s\n' "" > breath.txt
rm -f /tmp/kolbridge-hmm.wav
# an Arabic caller on the Hebrew garage (issue 21), and the agent answering in Arabic
make question_ar "مرحبا، بدي احجز دور لتصليح السيارة بكرا الصبح" ar
make answer_ar "أهلا وسهلا. عندنا دور بكرا الساعة تسعة الصبح، أو يوم الأربعاء الساعة وحدة الظهر. شو بناسبك؟" ar
make no_ar "لا" ar
make alternative_ar "تمام. في كمان دور يوم الخميس الساعة عشرة الصبح. بناسبك؟" ar
espeak-ng -v ar -s 60 -w /tmp/kolbridge-hmm_ar.wav "اممممم"  # an elongated Arabic filler
sox /tmp/kolbridge-hmm_ar.wav -r 8000 -c 1 -t ul hmm_ar.ul && printf '%s\n' "اممم" > hmm_ar.txt
rm -f /tmp/kolbridge-hmm_ar.wav
ls -l
