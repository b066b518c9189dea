// The demo database's seed data for `hoop gateway --dev` (src/gateway/dev.ts): fake customers and
// their orders, deterministic (a fixed-seed PRNG), realistic in shape, fake in substance. E-mail
// domains are the reserved example.* ones; phone numbers are in ranges set aside for fiction
// (UK 020 7946 0xxx, US 555-01xx, ...); card numbers pass Luhn and IBANs pass mod-97, so the
// detectors see what they would see in production.

/** What seeding needs of a database handle (dev.ts adapts a pg client to it). */
interface Queryable {
  query<T>(sql: string, params?: unknown[]): Promise<{rows: T[]}>
  exec(sql: string): Promise<unknown>
}

export const DEMO_CUSTOMERS = 50
const DEMO_ORDERS = 150

/** Creates and fills the demo tables unless `customers` exists. Returns the row counts it wrote. */
export async function seedDemoDatabase(db: Queryable): Promise<{customers: number; orders: number} | undefined> {
  const {rows} = await db.query<{present: boolean}>(`select to_regclass('public.customers') is not null as present`)
  if (rows[0]?.present) return undefined
  const customers = demoCustomers(DEMO_CUSTOMERS)
  const orders = demoOrders(DEMO_ORDERS, customers.length)
  const lit = (v: string | number | null) => (v === null ? 'null' : typeof v === 'number' ? String(v) : `'${v.replace(/'/g, "''")}'`)
  const sql = [
    'begin;',
    `create table customers (
       id integer primary key,
       full_name text not null,
       email text not null unique,
       phone text not null,
       card_number text not null,
       iban text,
       country char(2) not null,
       created_at timestamptz not null
     );`,
    `create table orders (
       id integer primary key,
       customer_id integer not null references customers(id),
       amount numeric(10,2) not null,
       currency char(3) not null,
       status text not null check (status in ('pending', 'paid', 'shipped', 'refunded')),
       ordered_at timestamptz not null
     );`,
    `insert into customers (id, full_name, email, phone, card_number, iban, country, created_at) values\n` +
      customers.map((c) => `(${[c.id, c.fullName, c.email, c.phone, c.cardNumber, c.iban, c.country, c.createdAt].map(lit).join(', ')})`).join(',\n') +
      ';',
    `insert into orders (id, customer_id, amount, currency, status, ordered_at) values\n` +
      orders.map((o) => `(${[o.id, o.customerId, o.amount, o.currency, o.status, o.orderedAt].map(lit).join(', ')})`).join(',\n') +
      ';',
    'commit;',
  ].join('\n')
  await db.exec(sql)
  return {customers: customers.length, orders: orders.length}
}

interface DemoCustomer {
  id: number
  fullName: string
  email: string
  phone: string
  cardNumber: string
  iban: string | null
  country: string
  createdAt: string
}

interface DemoOrder {
  id: number
  customerId: number
  amount: string
  currency: string
  status: string
  orderedAt: string
}

/** mulberry32: a small, well-mixed 32-bit PRNG; the same seed gives the same demo data everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Country {
  code: string
  currency: string
  first: string[]
  last: string[]
  /** A phone number in a range reserved for fiction or of a plausible shape; `d` gives a digit. */
  phone: (d: () => string) => string
  /** The BBAN (IBAN without country and check digits), or undefined where IBANs are not used. */
  bban?: (d: () => string, l: () => string) => string
}

const COUNTRIES: Country[] = [
  {
    code: 'GB',
    currency: 'GBP',
    first: ['Oliver', 'Amelia', 'Harry', 'Isla', 'George', 'Freya', 'Jack', 'Poppy'],
    last: ['Hughes', 'Patel', 'Thompson', 'Walsh', 'Clarke', 'Bennett', 'Khan', 'Fletcher'],
    phone: (d) => `+44 20 7946 0${d()}${d()}${d()}`,
    bban: (d, l) => `${l()}${l()}${l()}${l()}${rep(d, 14)}`,
  },
  {
    code: 'US',
    currency: 'USD',
    first: ['Emma', 'Liam', 'Olivia', 'Noah', 'Ava', 'Ethan', 'Sophia', 'Mason'],
    last: ['Johnson', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez', 'Anderson', 'Taylor'],
    phone: (d) => `+1 ${pick3(d)}-555-01${d()}${d()}`,
  },
  {
    code: 'DE',
    currency: 'EUR',
    first: ['Lukas', 'Mia', 'Leon', 'Hannah', 'Felix', 'Lena', 'Jonas', 'Clara'],
    last: ['Müller', 'Schmidt', 'Schneider', 'Fischer', 'Weber', 'Becker', 'Hoffmann', 'Wagner'],
    phone: (d) => `+49 30 ${d()}${d()}${d()}${d()} ${d()}${d()}${d()}`,
    bban: (d) => rep(d, 18),
  },
  {
    code: 'FR',
    currency: 'EUR',
    first: ['Louis', 'Chloé', 'Hugo', 'Léa', 'Jules', 'Manon', 'Arthur', 'Camille'],
    last: ['Martin', 'Bernard', 'Dubois', 'Lefèvre', 'Moreau', 'Laurent', 'Girard', 'Roux'],
    phone: (d) => `+33 1 99 00 ${d()}${d()} ${d()}${d()}`,
    bban: (d) => rep(d, 23),
  },
  {
    code: 'NL',
    currency: 'EUR',
    first: ['Daan', 'Sanne', 'Sem', 'Fleur', 'Bram', 'Lotte', 'Thijs', 'Noor'],
    last: ['de Jong', 'Jansen', 'de Vries', 'van Dijk', 'Bakker', 'Visser', 'Smit', 'Meijer'],
    phone: (d) => `+31 20 ${d()}${d()}${d()} ${d()}${d()}${d()}${d()}`,
    bban: (d, l) => `${l()}${l()}${l()}${l()}${rep(d, 10)}`,
  },
  {
    code: 'ES',
    currency: 'EUR',
    first: ['Lucía', 'Mateo', 'Sofía', 'Pablo', 'Martina', 'Álvaro', 'Valeria', 'Diego'],
    last: ['García', 'Fernández', 'López', 'Sánchez', 'Romero', 'Navarro', 'Torres', 'Ruiz'],
    phone: (d) => `+34 91 ${d()}${d()}${d()} ${d()}${d()} ${d()}${d()}`,
    bban: (d) => rep(d, 20),
  },
  {
    code: 'IE',
    currency: 'EUR',
    first: ['Seán', 'Aoife', 'Conor', 'Niamh', 'Cian', 'Saoirse', 'Darragh', 'Róisín'],
    last: ["O'Brien", 'Murphy', 'Kelly', 'Byrne', 'Ryan', "O'Connor", 'Doyle', 'McCarthy'],
    phone: (d) => `+353 1 ${d()}${d()}${d()} ${d()}${d()}${d()}${d()}`,
    bban: (d, l) => `${l()}${l()}${l()}${l()}${rep(d, 14)}`,
  },
]

const EMAIL_DOMAINS = ['example.com', 'example.org', 'example.net', 'mail.example.com']

function rep(d: () => string, n: number): string {
  let s = ''
  for (let i = 0; i < n; i++) s += d()
  return s
}

/** A US area code that is not 555 itself, e.g. 212, 415, 617. */
function pick3(d: () => string): string {
  const areas = ['212', '415', '617', '312', '206', '512', '303', '646']
  return areas[Number(d()) % areas.length]
}

/** ISO 13616 check digits for a BBAN (digits and upper-case letters). */
export function ibanFor(country: string, bban: string): string {
  const moved = `${bban}${country}00`
  let rem = 0
  for (const ch of moved) {
    const c = ch.charCodeAt(0)
    const v = c >= 65 ? String(c - 55) : ch
    for (const digit of v) rem = (rem * 10 + (digit.charCodeAt(0) - 48)) % 97
  }
  const check = String(98 - rem).padStart(2, '0')
  return `${country}${check}${bban}`.replace(/(.{4})(?=.)/g, '$1 ')
}

/** A card number of the given prefix and length whose last digit makes it pass Luhn. */
export function cardFor(prefix: string, length: number, d: () => string): string {
  let body = prefix
  while (body.length < length - 1) body += d()
  let sum = 0
  for (let i = 0; i < body.length; i++) {
    // Doubling starts from the digit left of the check digit.
    let v = body.charCodeAt(body.length - 1 - i) - 48
    if (i % 2 === 0) {
      v *= 2
      if (v > 9) v -= 9
    }
    sum += v
  }
  const full = body + String((10 - (sum % 10)) % 10)
  return length === 15 ? `${full.slice(0, 4)} ${full.slice(4, 10)} ${full.slice(10)}` : full.replace(/(\d{4})(?=\d)/g, '$1 ')
}

function asciiLocal(s: string): string {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z]+/g, '')
}

/** The demo customers: the same `n` rows on every machine. */
export function demoCustomers(n: number): DemoCustomer[] {
  const rnd = prng(0x600d_d474)
  const d = () => String(Math.floor(rnd() * 10))
  const l = () => String.fromCharCode(65 + Math.floor(rnd() * 26))
  const pickOf = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]
  const start = Date.UTC(2023, 0, 1)
  const span = Date.UTC(2025, 5, 30) - start
  const used = new Set<string>()
  const out: DemoCustomer[] = []
  for (let id = 1; id <= n; id++) {
    const c = COUNTRIES[(id - 1) % COUNTRIES.length]
    const first = pickOf(c.first)
    const last = pickOf(c.last)
    let email = `${asciiLocal(first)}.${asciiLocal(last)}@${pickOf(EMAIL_DOMAINS)}`
    for (let k = 2; used.has(email); k++) email = email.replace(/(\d*)@/, `${k}@`)
    used.add(email)
    const brand = rnd()
    const cardNumber = brand < 0.5 ? cardFor('4', 16, d) : brand < 0.85 ? cardFor(`5${1 + Math.floor(rnd() * 5)}`, 16, d) : cardFor(pickOf(['34', '37']), 15, d)
    const created = new Date(start + Math.floor(rnd() * span))
    created.setUTCMilliseconds(0)
    out.push({
      id,
      fullName: `${first} ${last}`,
      email,
      phone: c.phone(d),
      cardNumber,
      iban: c.bban ? ibanFor(c.code, c.bban(d, l)) : null,
      country: c.code,
      createdAt: created.toISOString(),
    })
  }
  return out
}

/** The demo orders, spread over the customers. */
export function demoOrders(n: number, customers: number): DemoOrder[] {
  const rnd = prng(0x0dde_75)
  const statuses = ['paid', 'paid', 'paid', 'shipped', 'shipped', 'pending', 'refunded']
  const start = Date.UTC(2024, 0, 1)
  const span = Date.UTC(2025, 8, 30) - start
  const out: DemoOrder[] = []
  for (let id = 1; id <= n; id++) {
    const customerId = 1 + Math.floor(rnd() * customers)
    const country = COUNTRIES[(customerId - 1) % COUNTRIES.length]
    const cents = 499 + Math.floor(rnd() * 49_500)
    const at = new Date(start + Math.floor(rnd() * span))
    at.setUTCMilliseconds(0)
    out.push({
      id,
      customerId,
      amount: (cents / 100).toFixed(2),
      currency: country.currency,
      status: statuses[Math.floor(rnd() * statuses.length)],
      orderedAt: at.toISOString(),
    })
  }
  return out
}
