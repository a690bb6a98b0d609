"""Writes tests/data/pii_corpus.tsv: realistic lead-conversation lines with
and without personal data, labelled. Deterministic (fixed seed), so the
committed corpus can be regenerated and reviewed as a diff.

Columns: text, then one column per kind (email, phone, ssn, card, address,
dob, iban) holding the exact substrings of that kind, separated by " | ",
empty when there are none. Lines without any label are the negatives:
numbers a real-estate conversation is full of (prices, zip codes, MLS
numbers, square feet, closing dates, invalid cards and SSNs...)."""
import random
import sys

R = random.Random(8)
KINDS = ["email", "phone", "ssn", "card", "address", "dob", "iban"]
FIRST = ["john", "maria", "wei", "aisha", "carlos", "emma", "raj", "olga", "li", "fatima", "noah", "chloe",
         "diego", "sven", "priya", "tom"]
LAST = ["smith", "garcia", "chen", "khan", "novak", "oconnor", "patel", "mueller", "nguyen", "brown", "dubois"]
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "example.com", "realty.co.uk", "mail.example.org",
           "homes-sacramento.net", "icloud.com", "proton.me", "company.io"]
STREETS = ["Elm", "Oak", "Maple", "Main", "Pine", "Cedar", "Sunset", "Lake View", "Martin Luther King",
           "Evergreen", "Park", "Washington", "Willow Creek", "5th", "21st", "Highland"]
SUFFIX = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Blvd", "Drive", "Dr", "Lane", "Ln",
          "Court", "Ct", "Way", "Place", "Terrace", "Circle", "Parkway"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def email():
    f, l, d = R.choice(FIRST), R.choice(LAST), R.choice(DOMAINS)
    local = R.choice([f + "." + l, f + l, f[0] + l + str(R.randint(1, 99)), f + "_" + l, f + "+homes", l])
    e = local + "@" + d
    return e.upper() if R.random() < 0.08 else e


def nanp():
    return "%d%02d" % (R.randint(2, 9), R.randint(0, 99)), "%d%02d" % (R.randint(2, 9), R.randint(0, 99)), \
        "%04d" % R.randint(0, 9999)


def phone():
    a, b, c = nanp()
    f = R.randint(0, 13)
    return [
        "(%s) %s-%s" % (a, b, c), "%s-%s-%s" % (a, b, c), "%s.%s.%s" % (a, b, c), "%s %s %s" % (a, b, c),
        "+1 %s %s %s" % (a, b, c), "+1%s%s%s" % (a, b, c), "1-%s-%s-%s" % (a, b, c), "%s%s%s" % (a, b, c),
        "+44 20 7946 %04d" % R.randint(0, 9999), "+49 30 %d" % R.randint(1000000, 99999999),
        "+33 1 42 68 %02d %02d" % (R.randint(0, 99), R.randint(0, 99)),
        "+61 2 9374 %04d" % R.randint(0, 9999), "0044 20 7946 %04d" % R.randint(0, 9999),
        "07700 %06d" % R.randint(0, 999999),
    ][f]


def ssn():
    while True:
        a, g, s = R.randint(1, 899), R.randint(1, 99), R.randint(1, 9999)
        if a != 666:
            break
    return R.choice(["%03d-%02d-%04d", "%03d-%02d-%04d", "%03d %02d %04d"]) % (a, g, s)


def luhn_complete(prefix, length):
    digits = [int(x) for x in prefix]
    while len(digits) < length - 1:
        digits.append(R.randint(0, 9))
    for check in range(10):
        d = digits + [check]
        tot = 0
        for i, x in enumerate(reversed(d)):
            if i % 2 == 1:
                x *= 2
                if x > 9:
                    x -= 9
            tot += x
        if tot % 10 == 0:
            return "".join(map(str, d))


def card(valid=True):
    kind = R.randint(0, 4)
    prefix, length = [("4", 16), ("5" + str(R.randint(1, 5)), 16), ("3" + R.choice("47"), 15), ("6011", 16),
                      ("2221", 16)][kind]
    num = luhn_complete(prefix, length)
    if not valid:
        num = num[:-1] + str((int(num[-1]) + R.randint(1, 9)) % 10)
    style = R.randint(0, 2)
    if length == 15:
        parts = [num[:4], num[4:10], num[10:]]
    else:
        parts = [num[i:i + 4] for i in range(0, 16, 4)]
    return [num, " ".join(parts), "-".join(parts)][style]


def address():
    n = R.choice([str(R.randint(1, 99)), str(R.randint(100, 9999)), str(R.randint(10000, 99999))])
    street = R.choice(STREETS)
    d = R.choice(["", "", "", "N ", "W ", "South "])
    a = "%s %s%s %s" % (n, d, street, R.choice(SUFFIX))
    r = R.random()
    if r < 0.15:
        a += R.choice([", Apt %d" % R.randint(1, 40), " Unit %d%s" % (R.randint(1, 9), R.choice("AB")),
                       " #%d" % R.randint(1, 300), ", Suite %d" % R.randint(100, 900)])
    if R.random() < 0.1:
        a = a.lower() if a.split()[-1].lower() in ("st", "ave", "rd", "dr", "ln", "ct", "blvd") else a
    return a


def dob_date(two_digit=False):
    y, m, d = R.randint(1940, 2004), R.randint(1, 12), R.randint(1, 28)
    if two_digit:
        return "%d/%d/%02d" % (m, d, y % 100)
    return R.choice(["%02d/%02d/%d" % (m, d, y), "%d/%d/%d" % (m, d, y), "%d-%02d-%02d" % (y, m, d),
                     "%s %d, %d" % (MONTHS[m - 1], d, y), "%d %s %d" % (d, MONTHS[m - 1], y),
                     "%02d.%02d.%d" % (d, m, y)])


def iban(valid=True):
    cc, bban = R.choice([
        ("DE", "%08d%010d" % (R.randint(10000000, 99999999), R.randint(0, 9999999999))),
        ("GB", "NWBK%06d%08d" % (R.randint(0, 999999), R.randint(0, 99999999))),
        ("FR", "%010d%011d%02d" % (R.randint(0, 9999999999), R.randint(0, 99999999999), R.randint(0, 99))),
        ("NL", "ABNA%010d" % R.randint(0, 9999999999)),
        ("ES", "%020d" % R.randint(0, 10 ** 20 - 1)),
    ])
    num = "".join(str(int(ch, 36)) for ch in bban + cc + "00")
    check = 98 - int(num) % 97
    if not valid:
        check = (check + R.randint(1, 50)) % 97 + 2
    s = "%s%02d%s" % (cc, check, bban)
    if R.random() < 0.5:
        s = " ".join(s[i:i + 4] for i in range(0, len(s), 4))
    return s


POS = {
    "email": ["You can email me at {}", "my email is {} thanks", "Send the disclosures to {}.",
              "EMAIL: {}", "reach my husband at {} or me here", "({}) is best for documents",
              "Updated contact - {}", "cc {} on the offer please"],
    "phone": ["Call me at {}", "my cell is {} after 5pm", "You can text {} anytime",
              "Phone: {}", "wife's number {} if I don't pick up", "Reach our lender at {}.",
              "call {} to book the showing", "new number -> {}"],
    "ssn": ["My SSN is {} for the credit check", "social security number {}", "ssn: {}",
            "here's my social {} for the application", "Co-borrower SSN {}"],
    "card": ["Use card {} for the application fee", "my visa is {} exp 08/27", "card number: {}",
             "charge the deposit to {} please", "Amex {} cvv on the back"],
    "address": ["We live at {} right now", "The house at {} looks great", "Can we see {} on Saturday?",
                "Our current address is {}, Sacramento CA 95816", "send the keys to {}",
                "I grew up near {} actually", "listing at {} just dropped its price"],
    "dob": ["DOB {}", "date of birth: {}", "I was born on {}", "my birthday is {}", "Born {} in Ohio",
            "D.O.B. {} for the lender form"],
    "iban": ["Wire the earnest money from {}", "my IBAN is {}", "IBAN: {} (Deutsche Bank)",
             "transfer from account {} please", "Bank details {} thanks"],
}
GEN = {"email": email, "phone": phone, "ssn": ssn, "card": card, "address": address, "dob": dob_date,
       "iban": iban}

NEG = [
    "Looking for a 3 bed 2 bath under $450,000 in 95816",
    "The list price is $1,250,000 and HOA is $350/month",
    "MLS# 221018834 just came on the market",
    "It's 2,400 sq ft on a 6,500 sq ft lot built in 1985",
    "We need 3-4 bedrooms and 2.5 baths",
    "Closing is set for 03/15/2026 at 10am",
    "Can we do a showing on 11/02/2025 at 2:30?",
    "Rates are around 6.875% right now, points 0.5",
    "Order 123456789012 confirmed",
    "Tracking 9400 1000 0000 0000 0000 00",
    "card ending in 4242 was declined",
    "Reference number 4111 1111 1111 1112",
    "Ticket 5500-0000-0000-0005 is invalid",
    "SSN 000-12-3456 is not a real one",
    "the test number 987-65-4321 is reserved",
    "We moved here in 2019 and want to sell by June",
    "Open house April 5, 2026 from 1 to 4",
    "I saw 2 nice places yesterday and 3 more today",
    "We have 2 dogs and a court date next week",
    "Main Street shops are walking distance",
    "Offer expires in 48 hours, counter at 465k",
    "The comps were 455k, 470k and 482k",
    "Zip codes 95811 95814 95816 95819 please",
    "Budget 400-500k, down payment 20%",
    "Is the 1031 exchange deadline 45 days?",
    "Version 2.3.1 of the app keeps crashing",
    "Our site is www.example.com/listings/123",
    "Follow us @sacramentohomes for updates",
    "price per sqft is $325.50",
    "Lot 12 of phase 3 is still available",
    "Unit 5 on the 2nd floor has the best view",
    "The score came back at 742 from all three bureaus",
    "We can do 30 or 15 year fixed",
    "I need 10 days for inspection and 17 days for the loan",
    "IBAN format is like DE00 0000 0000 0000 0000 00 but I'll send it later",
    "Account AB12CD34 is the escrow reference",
    "Mortgage payment would be about $2,850 a month",
    "Property tax rate is 1.1% and Mello-Roos 0.3%",
    "I'm free between 9 and 5 on weekdays",
    "Schedule: 10:00, 11:30, 13:00 and 15:45",
    "The appraisal came in at 512,000",
    "Earnest money is 3% of the price",
    "We're 2 adults, 3 kids and 1 cat",
    "HOA meeting on 2026-01-20 at the clubhouse",
    "Built 2004, remodeled 2018, roof 2021",
    "The seller wants to close by 12/31/2025",
    "42 photos and a 3D tour are online",
    "Square footage: 1,850; lot: 0.25 acres",
    "Call back after 6pm please, thanks!",
    "Send me an email when the price drops",
    "Text me the address when you can",
    "Can you send the disclosures?",
    "Interest only for 10 years then 20 amortized",
    "APN 001-0123-045-0000 on the county site",
    "Permit number 2023-045678 was finaled",
    "My preapproval letter is for 525000",
    "Our lender quoted 7.125 with 1 point",
    "Room sizes 12x14, 11x12 and 10x10",
    "Please ask for 5-7 business days",
    "Price reduced from 699,900 to 675,000",
    "Years: 1999 2000 2001 comps",
    "The 405 and the 5 are both close",
    "Route 66 diner is nearby",
    "In 2 weeks we'll know about the job",
    "Give me 15 minutes",
    "Wi-Fi password is sunset2024",
    "Agent license DRE 01234567",
    "Invoice INV-2025-00042 paid",
    "We saw homes on 3 streets: Elm, Oak and Pine",
    "Gate code 4821# then press call",
    "Flight UA 1549 lands at 6:20",
    "Lockbox code 0815",
    "Pre-approved up to 600k with 10% down",
    "Ask price 1.2M, counter 1.15M",
    "Budget is flexible, maybe 550 to 600",
    "Need a yard for 2 dogs",
]


# Hand-written lines, not from templates: the odd formats real messages
# have, with their labels (kind -> substrings), and hard negatives ({}).
HAND = [
    ("hey its maria, new cell is 916-555-0143, old one is dead", {"phone": ["916-555-0143"]}),
    ("Call/text: (530)555-0199 after 6", {"phone": ["(530)555-0199"]}),
    ("ph 916.555.0178 / fax 916.555.0179", {"phone": ["916.555.0178", "916.555.0179"]}),
    ("UK mobile +44 7700 900123, US +1 (916) 555-0110", {"phone": ["+44 7700 900123", "+1 (916) 555-0110"]}),
    ("Numéro: +33 6 12 34 56 78 — merci!", {"phone": ["+33 6 12 34 56 78"]}),
    ("reach me on whatsapp +5511987654321", {"phone": ["+5511987654321"]}),
    ("my email:JANE.DOE@Example.COM.", {"email": ["JANE.DOE@Example.COM"]}),
    ("emails: a.b@x.io, c_d@y.org; thanks", {"email": ["a.b@x.io", "c_d@y.org"]}),
    ("<tom.nguyen@homes.example.net> wrote: sounds good", {"email": ["tom.nguyen@homes.example.net"]}),
    ("SSN#: 219-09-9999 for the lender", {"ssn": ["219-09-9999"]}),
    ("my social is 078 05 1120 (yes really)", {"ssn": ["078 05 1120"]}),
    ("Visa 4012-8888-8888-1881 exp 12/27 cvv 123", {"card": ["4012-8888-8888-1881"]}),
    ("mastercard 5105105105105100 pls charge deposit", {"card": ["5105105105105100"]}),
    ("amex: 3782 822463 10005", {"card": ["3782 822463 10005"]}),
    ("We're at 1600 Pennsylvania Avenue NW but moving soon", {"address": ["1600 Pennsylvania Avenue"]}),
    ("new place is 4821 Old Auburn Rd, Apt 12, Sacramento", {"address": ["4821 Old Auburn Rd, Apt 12"]}),
    ("meet me at 221 baker st at noon", {"address": ["221 baker st"]}),
    ("born 11/23/1971 in Fresno", {"dob": ["11/23/1971"]}),
    ("DOB - Feb 29, 1988", {"dob": ["Feb 29, 1988"]}),
    ("birthday: 1990-07-04 (co-buyer)", {"dob": ["1990-07-04"]}),
    ("IBAN GB29 NWBK 6016 1331 9268 19 for the deposit", {"iban": ["GB29 NWBK 6016 1331 9268 19"]}),
    ("wire from DE89370400440532013000 tomorrow", {"iban": ["DE89370400440532013000"]}),
    ("offer at 649,900 with 3% down, close in 21 days", {}),
    ("Showing at 4:30 on 12/06/2025 — lockbox 2580", {}),
    ("APR 6.99%, points 1.25, loan amt 520,000", {}),
    ("the 2019 comps at 1402 sqft sold for 455k", {}),
    ("ZIP 95818-2417, parcel 010-0123-004", {}),
    ("Order #112-4456789-1234567 shipped", {}),
    ("ref 4111-1111-1111-1112 not a real card", {}),
    ("Call 1-800-FLOWERS for the gift", {}),
    ("v3.14.15 build 20250101", {}),
    ("we need 4-5 beds and 3.5 baths, 2,800-3,200 sqft", {}),
    ("HOA $415/mo, taxes ~1.25%, Mello Roos $1,100/yr", {}),
    ("Room 101 is the office, room 102 the guest", {}),
    ("Meet at Starbucks on J St, 10am", {}),
    ("price went from 1,250,000 to 1,199,000 on 03/02/2025", {}),
    ("2 Main St shops are a block away", {"address": ["2 Main St"]}),
]


def line(text, labels):
    assert "\t" not in text and all("|" not in v for vs in labels.values() for v in vs), text
    return "\t".join([text] + [" | ".join(labels.get(k, [])) for k in KINDS])


def main():
    out = []
    for kind, templates in POS.items():
        count = 60 if kind in ("email", "phone", "ssn", "card") else 40
        for i in range(count):
            v = GEN[kind]()
            if kind == "dob" and i % 5 == 4:
                v = dob_date(two_digit=True)
            t = templates[i % len(templates)]
            if kind == "dob" and i % 7 == 6:  # unanchored birth year in range
                t = "{} is when I was born, need it for the form"
            out.append(line(t.format(v), {kind: [v]}))
    # unanchored DOB by year range
    for i in range(10):
        v = "%02d/%02d/%d" % (R.randint(1, 12), R.randint(1, 28), R.randint(1950, 1999))
        out.append(line("Co-buyer %s %s, %s" % (R.choice(FIRST).title(), R.choice(LAST).title(), v), {"dob": [v]}))
    # lines with several kinds
    for i in range(50):
        ks = R.sample(["email", "phone", "ssn", "card", "address", "dob", "iban"], 2)
        vals = {k: GEN[k]() for k in ks}
        parts = []
        for k in ks:
            lead = {"email": "email %s", "phone": "cell %s", "ssn": "SSN %s", "card": "card %s",
                    "address": "we're at %s", "dob": "DOB %s", "iban": "IBAN %s"}[k]
            parts.append(lead % vals[k])
        out.append(line("Hi, " + " and ".join(parts) + ". Thanks!", {k: [v] for k, v in vals.items()}))
    for t in NEG:
        out.append(line(t, {}))
    for t, labels in HAND:
        out.append(line(t, labels))
    for i in range(40):
        out.append(line("Ref %s on the statement" % card(valid=False), {}))
    for i in range(15):
        out.append(line("that IBAN %s bounced, wrong check digits" % iban(valid=False), {}))
    for i in range(30):
        out.append(line("%d beds, %d baths, $%d,%03d, %d sq ft in %d" % (
            R.randint(1, 6), R.randint(1, 4), R.randint(150, 999), R.randint(0, 999) // 5 * 5,
            R.randint(700, 4000), R.randint(95811, 95864)), {}))
    R.shuffle(out)
    sys.stdout.write("# text\t" + "\t".join(KINDS) + "\n")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
