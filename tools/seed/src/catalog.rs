//! The demo catalog (both markets) and the flash-sale coupon, from a compact table.
//!
//! Deterministic: no randomness, so every environment shows the same shop. Idempotent: products
//! are recognised by their English name and the coupon by its name, so a second run adds nothing.
//! The rows are written with this crate's own SQL (it does not link the server library); the
//! API tests check that the server serves each of them exactly as it serves the same product
//! created through `POST /api/admin/products`.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;

/// One option of a demo product.
#[derive(Debug, Clone, Copy)]
pub struct DemoOption {
    /// Option name, the same in both languages.
    pub name: &'static str,
    /// Price in KRW.
    pub krw: i64,
    /// Price in USD cents; `None`: not sold in the US.
    pub usd: Option<i64>,
    /// Units in stock.
    pub stock: i32,
}

/// One demo product. Stock levels are chosen so the shop shows every stock status: plain
/// IN_STOCK, LOW_STOCK (1..9 left) and SOLD_OUT (0), per product and per option.
#[derive(Debug, Clone, Copy)]
pub struct Demo {
    /// Unique slug; names the product's image.
    pub slug: &'static str,
    /// Category slug.
    pub category: &'static str,
    /// Whether it is on sale.
    pub on_sale: bool,
    /// Name in Korean and English (the English name identifies a demo product).
    pub name: (&'static str, &'static str),
    /// Description in Korean and English.
    pub description: (&'static str, &'static str),
    /// Its options, one to three.
    pub options: &'static [DemoOption],
}

const fn o(name: &'static str, krw: i64, usd: i64, stock: i32) -> DemoOption {
    DemoOption { name, krw, usd: Some(usd), stock }
}

/// An option sold only in Korea.
const fn kr(name: &'static str, krw: i64, stock: i32) -> DemoOption {
    DemoOption { name, krw, usd: None, stock }
}

/// The demo products, oldest first (the last one is the newest).
#[rustfmt::skip]
const PRODUCTS: &[Demo] = &[
    // electronics
    Demo { slug: "wireless-anc-headphones", category: "electronics", on_sale: true,
        name: ("무선 노이즈캔슬링 헤드폰", "Wireless Noise-Cancelling Headphones"),
        description: ("주변 소음을 최대 95%까지 줄여 주는 오버이어 헤드폰. 한 번 충전으로 30시간 재생.", "Over-ear headphones that cut ambient noise by up to 95%, with 30 hours of playback per charge."),
        options: &[o("Black", 329_000, 24_999, 120), o("Silver", 329_000, 24_999, 7)] },
    Demo { slug: "true-wireless-earbuds", category: "electronics", on_sale: true,
        name: ("완전 무선 이어폰", "True Wireless Earbuds"),
        description: ("가볍고 편안한 착용감, 생활 방수 IPX4, 무선 충전 케이스 포함.", "Light, comfortable earbuds with IPX4 water resistance and a wireless charging case."),
        options: &[o("White", 129_000, 9_999, 300)] },
    Demo { slug: "27-inch-4k-monitor", category: "electronics", on_sale: true,
        name: ("27인치 4K UHD 모니터", "27-inch 4K UHD Monitor"),
        description: ("IPS 패널, sRGB 99%, USB-C 65W 충전을 지원하는 업무용 모니터.", "IPS panel with 99% sRGB and 65 W USB-C charging, made for work."),
        options: &[o("Standard stand", 459_000, 34_999, 40), o("Height-adjustable stand", 519_000, 38_999, 5)] },
    Demo { slug: "mechanical-keyboard-brown", category: "electronics", on_sale: true,
        name: ("기계식 키보드 (갈축)", "Mechanical Keyboard (Brown Switches)"),
        description: ("조용한 타건감의 갈축 스위치, PBT 키캡, 유무선 겸용.", "Quiet tactile brown switches, PBT keycaps, wired and wireless."),
        options: &[kr("Korean layout", 89_000, 60), o("US layout", 89_000, 6_999, 80)] },
    Demo { slug: "portable-ssd", category: "electronics", on_sale: true,
        name: ("포터블 SSD", "Portable SSD"),
        description: ("최대 1,050MB/s 전송 속도의 손바닥만 한 외장 SSD.", "A palm-sized external SSD with transfer speeds up to 1,050 MB/s."),
        options: &[o("1TB", 149_000, 10_999, 3), o("2TB", 259_000, 18_999, 4)] },
    Demo { slug: "smartwatch", category: "electronics", on_sale: true,
        name: ("스마트워치", "Smartwatch"),
        description: ("심박수, 수면, 혈중 산소 측정과 GPS를 갖춘 스마트워치.", "Tracks heart rate, sleep and blood oxygen, with built-in GPS."),
        options: &[o("41mm", 399_000, 29_999, 0), o("45mm", 429_000, 31_999, 0)] },
    Demo { slug: "usb-c-charger-65w", category: "electronics", on_sale: true,
        name: ("65W USB-C 고속 충전기", "65W USB-C Fast Charger"),
        description: ("노트북과 스마트폰을 동시에 충전하는 GaN 2포트 충전기.", "A two-port GaN charger for a laptop and a phone at once."),
        options: &[o("White", 45_000, 2_999, 500)] },
    Demo { slug: "bluetooth-speaker", category: "electronics", on_sale: true,
        name: ("휴대용 블루투스 스피커", "Portable Bluetooth Speaker"),
        description: ("풍부한 저음과 방수 IP67, 캠핑에도 든든한 12시간 배터리.", "Deep bass, IP67 waterproofing and a 12-hour battery for camping trips."),
        options: &[o("Blue", 79_000, 5_999, 35), o("Red", 79_000, 5_999, 0)] },
    Demo { slug: "robot-vacuum", category: "electronics", on_sale: false,
        name: ("로봇청소기", "Robot Vacuum Cleaner"),
        description: ("라이다 센서로 집 구조를 학습하는 물걸레 겸용 로봇청소기.", "A lidar-mapping robot vacuum that also mops."),
        options: &[o("Standard", 599_000, 44_999, 12)] },
    // fashion
    Demo { slug: "oversized-cotton-tshirt", category: "fashion", on_sale: true,
        name: ("오버핏 코튼 반팔 티셔츠", "Oversized Cotton T-Shirt"),
        description: ("20수 면 100%로 만든 탄탄한 오버핏 반팔 티셔츠.", "A sturdy oversized tee in 100% cotton."),
        options: &[o("S", 19_900, 1_499, 100), o("M", 19_900, 1_499, 150), o("L", 19_900, 1_499, 2)] },
    Demo { slug: "slim-fit-denim-jeans", category: "fashion", on_sale: true,
        name: ("슬림핏 데님 청바지", "Slim-Fit Denim Jeans"),
        description: ("신축성 좋은 스트레치 데님으로 편안한 슬림핏.", "Comfortable slim fit in stretch denim."),
        options: &[o("28", 49_000, 3_999, 40), o("30", 49_000, 3_999, 0), o("32", 49_000, 3_999, 25)] },
    Demo { slug: "lightweight-down-jacket", category: "fashion", on_sale: true,
        name: ("경량 패딩 점퍼", "Lightweight Down Jacket"),
        description: ("덕다운 충전재로 가볍고 따뜻하며 파우치에 접어 넣을 수 있습니다.", "Warm, light duck-down jacket that packs into its own pouch."),
        options: &[o("M", 89_000, 6_999, 4), o("L", 89_000, 6_999, 3)] },
    Demo { slug: "leather-sneakers", category: "fashion", on_sale: true,
        name: ("가죽 스니커즈", "Leather Sneakers"),
        description: ("소가죽 어퍼와 쿠션 인솔의 데일리 스니커즈.", "Everyday sneakers with a cowhide upper and a cushioned insole."),
        options: &[o("250mm", 79_000, 5_999, 30), o("260mm", 79_000, 5_999, 30), o("270mm", 79_000, 5_999, 30)] },
    Demo { slug: "wool-blend-long-coat", category: "fashion", on_sale: true,
        name: ("울 블렌드 롱코트", "Wool-Blend Long Coat"),
        description: ("울 70% 혼방 원단의 클래식 싱글 롱코트.", "A classic single-breasted long coat in a 70% wool blend."),
        options: &[o("M", 239_000, 17_999, 0), o("L", 239_000, 17_999, 0)] },
    Demo { slug: "canvas-tote-bag", category: "fashion", on_sale: true,
        name: ("캔버스 토트백", "Canvas Tote Bag"),
        description: ("노트북도 들어가는 넉넉한 수납의 두꺼운 캔버스 토트백.", "A roomy heavy-canvas tote that fits a laptop."),
        options: &[o("Ivory", 25_000, 1_899, 200), o("Black", 25_000, 1_899, 180)] },
    Demo { slug: "cashmere-scarf", category: "fashion", on_sale: true,
        name: ("캐시미어 머플러", "Cashmere Scarf"),
        description: ("부드러운 캐시미어 100% 머플러, 선물 포장 가능.", "A soft 100% cashmere scarf, gift wrap available."),
        options: &[o("Grey", 59_000, 4_499, 60)] },
    Demo { slug: "linen-shirt", category: "fashion", on_sale: true,
        name: ("린넨 셔츠", "Linen Shirt"),
        description: ("통기성 좋은 프렌치 린넨으로 만든 여름 셔츠.", "A breathable summer shirt in French linen."),
        options: &[o("M", 39_000, 2_999, 50), o("L", 39_000, 2_999, 45)] },
    Demo { slug: "modern-hanbok-jacket", category: "fashion", on_sale: true,
        name: ("생활한복 저고리 자켓", "Modern Hanbok Jacket"),
        description: ("전통 저고리의 선을 살린 데일리 생활한복 자켓.", "An everyday jacket cut along the lines of a traditional jeogori."),
        options: &[kr("Free", 129_000, 15)] },
    // food
    Demo { slug: "jeju-tangerines", category: "food", on_sale: true,
        name: ("제주 감귤", "Jeju Tangerines"),
        description: ("제주에서 수확 당일 발송하는 새콤달콤한 노지 감귤.", "Sweet open-field tangerines shipped from Jeju on the day they are picked."),
        options: &[kr("5kg", 29_900, 80), kr("10kg", 49_900, 6)] },
    Demo { slug: "hanwoo-sirloin", category: "food", on_sale: true,
        name: ("1++ 한우 등심 500g", "Premium Hanwoo Sirloin 500g"),
        description: ("마블링이 뛰어난 1++ 등급 한우 등심, 냉장 배송.", "Richly marbled grade 1++ Korean beef sirloin, shipped chilled."),
        options: &[kr("500g", 89_000, 8)] },
    Demo { slug: "napa-cabbage-kimchi", category: "food", on_sale: true,
        name: ("포기김치 3kg", "Napa Cabbage Kimchi 3kg"),
        description: ("국내산 배추와 고춧가루로 담근 전통 포기김치.", "Traditional whole-cabbage kimchi made with Korean cabbage and chili."),
        options: &[o("3kg", 32_000, 2_499, 150)] },
    Demo { slug: "spicy-ramen-multipack", category: "food", on_sale: true,
        name: ("매운 라면 멀티팩", "Spicy Instant Ramen Multipack"),
        description: ("쫄깃한 면발과 얼큰한 국물의 스테디셀러 라면.", "The best-selling ramen with chewy noodles and a fiery broth."),
        options: &[o("5 pack", 4_500, 499, 1_000), o("40 pack", 32_000, 3_299, 200)] },
    Demo { slug: "cold-brew-concentrate", category: "food", on_sale: true,
        name: ("콜드브루 원액 1L", "Cold Brew Coffee Concentrate 1L"),
        description: ("16시간 저온 추출한 콜드브루 원액, 물이나 우유에 희석해 즐기세요.", "Cold brew steeped for 16 hours; mix with water or milk."),
        options: &[o("1L", 18_900, 1_499, 90)] },
    Demo { slug: "organic-green-tea", category: "food", on_sale: true,
        name: ("유기농 녹차 티백 100개입", "Organic Green Tea, 100 Bags"),
        description: ("보성 유기농 찻잎으로 만든 깔끔한 녹차 티백.", "Clean-tasting green tea from organic Boseong leaves."),
        options: &[o("100 bags", 15_900, 1_299, 70)] },
    Demo { slug: "daily-mixed-nuts", category: "food", on_sale: true,
        name: ("하루견과 30봉", "Daily Mixed Nuts, 30 Packs"),
        description: ("아몬드, 호두, 캐슈넛, 크랜베리를 하루 한 봉에 담았습니다.", "Almonds, walnuts, cashews and cranberries in one pack a day."),
        options: &[o("30 packs", 24_900, 1_999, 0)] },
    Demo { slug: "korean-pear-gift-set", category: "food", on_sale: false,
        name: ("신고배 선물세트", "Korean Pear Gift Set"),
        description: ("명절 선물용 특품 신고배 7입 세트 (시즌 종료).", "Seven premium Singo pears in a holiday gift box (out of season)."),
        options: &[kr("7 pears", 59_000, 20)] },
    Demo { slug: "gochujang", category: "food", on_sale: true,
        name: ("태양초 고추장 1kg", "Gochujang Red Pepper Paste 1kg"),
        description: ("햇볕에 말린 고춧가루로 만든 깊은 맛의 고추장.", "Deep-flavoured gochujang made with sun-dried chili."),
        options: &[o("1kg", 13_900, 1_099, 5)] },
    // home
    Demo { slug: "memory-foam-pillow", category: "home", on_sale: true,
        name: ("메모리폼 경추 베개", "Memory Foam Pillow"),
        description: ("목과 어깨를 편안하게 받쳐 주는 인체공학 메모리폼 베개.", "An ergonomic memory foam pillow that supports neck and shoulders."),
        options: &[o("Standard", 39_000, 2_999, 110)] },
    Demo { slug: "cotton-bedding-set", category: "home", on_sale: true,
        name: ("순면 침구 세트", "Cotton Bedding Set"),
        description: ("60수 순면 이불 커버와 베개 커버 2개 구성.", "A 60s pure cotton duvet cover with two pillowcases."),
        options: &[o("Queen", 129_000, 9_999, 20), o("King", 149_000, 11_499, 9)] },
    Demo { slug: "stainless-cookware-set", category: "home", on_sale: true,
        name: ("스테인리스 냄비 세트", "Stainless Steel Cookware Set"),
        description: ("인덕션 호환 3중 바닥 스테인리스 냄비 5종.", "Five tri-ply stainless steel pots, induction ready."),
        options: &[o("5 pieces", 159_000, 11_999, 25)] },
    Demo { slug: "air-fryer", category: "home", on_sale: true,
        name: ("에어프라이어 5.5L", "Air Fryer 5.5L"),
        description: ("기름 없이 바삭하게, 넉넉한 5.5L 바스켓.", "Crispy without oil, with a roomy 5.5 L basket."),
        options: &[o("5.5L", 89_000, 6_999, 2)] },
    Demo { slug: "led-desk-lamp", category: "home", on_sale: true,
        name: ("LED 스탠드", "LED Desk Lamp"),
        description: ("눈부심을 줄인 무선 충전 겸용 LED 스탠드.", "A low-glare LED lamp with a wireless charging base."),
        options: &[o("White", 45_000, 3_499, 60), o("Black", 45_000, 3_499, 0)] },
    Demo { slug: "storage-box-set", category: "home", on_sale: true,
        name: ("리빙박스 3개 세트", "Storage Box Set of 3"),
        description: ("쌓아 올릴 수 있는 뚜껑 포함 리빙박스 3개.", "Three stackable storage boxes with lids."),
        options: &[o("Set of 3", 29_000, 2_299, 0)] },
    Demo { slug: "reed-diffuser", category: "home", on_sale: true,
        name: ("리드 디퓨저", "Reed Diffuser"),
        description: ("은은한 향이 두 달간 지속되는 리드 디퓨저 200ml.", "A 200 ml reed diffuser whose gentle scent lasts two months."),
        options: &[o("Lavender", 22_000, 1_699, 75), o("Cotton", 22_000, 1_699, 75)] },
    Demo { slug: "bamboo-cutting-board", category: "home", on_sale: true,
        name: ("대나무 도마", "Bamboo Cutting Board"),
        description: ("칼자국이 덜 남는 단단한 대나무 원목 도마.", "A hard bamboo board that resists knife marks."),
        options: &[o("Large", 19_000, 1_499, 40)] },
    // beauty
    Demo { slug: "vitamin-c-serum", category: "beauty", on_sale: true,
        name: ("비타민C 세럼 30ml", "Vitamin C Serum 30ml"),
        description: ("순수 비타민C 15%로 맑은 피부 톤을 가꿔 줍니다.", "15% pure vitamin C for a brighter, even tone."),
        options: &[o("30ml", 32_000, 2_499, 140)] },
    Demo { slug: "sunscreen-spf50", category: "beauty", on_sale: true,
        name: ("선크림 SPF50+ PA++++", "Sunscreen SPF50+ PA++++"),
        description: ("백탁 없이 가볍게 발리는 데일리 선크림.", "A light daily sunscreen that leaves no white cast."),
        options: &[o("50ml", 18_000, 1_399, 250), o("50ml x 2", 33_000, 2_599, 6)] },
    Demo { slug: "hydrating-sheet-masks", category: "beauty", on_sale: true,
        name: ("수분 시트 마스크 10매", "Hydrating Sheet Masks, 10 Pack"),
        description: ("히알루론산을 듬뿍 담은 수분 진정 시트 마스크.", "Soothing sheet masks loaded with hyaluronic acid."),
        options: &[o("10 sheets", 15_000, 1_199, 300)] },
    Demo { slug: "cushion-foundation", category: "beauty", on_sale: true,
        name: ("쿠션 파운데이션", "Cushion Foundation"),
        description: ("얇고 촉촉하게 밀착되는 커버력 좋은 쿠션, 리필 포함.", "A thin, dewy, buildable cushion with a refill."),
        options: &[o("21N", 38_000, 2_899, 3), o("23N", 38_000, 2_899, 4)] },
    Demo { slug: "snail-mucin-essence", category: "beauty", on_sale: true,
        name: ("달팽이 점액 에센스", "Snail Mucin Essence"),
        description: ("달팽이 점액 여과물 96%로 피부 장벽을 촉촉하게.", "96% snail secretion filtrate for a hydrated skin barrier."),
        options: &[o("100ml", 27_000, 2_099, 90)] },
    Demo { slug: "protein-hair-treatment", category: "beauty", on_sale: true,
        name: ("단백질 헤어 트리트먼트", "Protein Hair Treatment"),
        description: ("손상된 모발에 단백질을 채워 주는 집중 트리트먼트.", "An intensive treatment that restores protein to damaged hair."),
        options: &[o("200ml", 16_000, 1_299, 0)] },
    Demo { slug: "velvet-lip-tint", category: "beauty", on_sale: true,
        name: ("벨벳 립 틴트", "Velvet Lip Tint"),
        description: ("보송한 벨벳 마무리로 오래 지속되는 립 틴트.", "A long-wearing tint with a soft velvet finish."),
        options: &[o("Coral", 12_000, 999, 45), o("Rose", 12_000, 999, 50), o("Red", 12_000, 999, 1)] },
    Demo { slug: "red-ginseng-cream", category: "beauty", on_sale: true,
        name: ("홍삼 영양 크림", "Red Ginseng Nourishing Cream"),
        description: ("6년근 홍삼 추출물로 탄력을 채워 주는 영양 크림.", "A rich cream with six-year red ginseng extract for firmer skin."),
        options: &[kr("50ml", 68_000, 30)] },
    // sports
    Demo { slug: "yoga-mat", category: "sports", on_sale: true,
        name: ("요가 매트 8mm", "Yoga Mat 8mm"),
        description: ("미끄럼 방지 TPE 소재의 두툼한 8mm 요가 매트.", "A thick 8 mm non-slip TPE yoga mat."),
        options: &[o("Purple", 35_000, 2_699, 70), o("Grey", 35_000, 2_699, 65)] },
    Demo { slug: "adjustable-dumbbells", category: "sports", on_sale: true,
        name: ("무게 조절 덤벨 24kg", "Adjustable Dumbbells 24kg"),
        description: ("다이얼 하나로 2.5kg부터 24kg까지 조절되는 덤벨 한 쌍.", "A pair of dumbbells that dial from 2.5 kg to 24 kg."),
        options: &[o("Pair", 299_000, 22_999, 9)] },
    Demo { slug: "running-shoes", category: "sports", on_sale: true,
        name: ("쿠셔닝 러닝화", "Cushioned Running Shoes"),
        description: ("장거리에도 편안한 고탄성 미드솔 러닝화.", "High-rebound midsoles that stay comfortable over long runs."),
        options: &[o("260mm", 119_000, 8_999, 20), o("270mm", 119_000, 8_999, 0), o("280mm", 119_000, 8_999, 15)] },
    Demo { slug: "camping-tent-4p", category: "sports", on_sale: true,
        name: ("4인용 캠핑 텐트", "4-Person Camping Tent"),
        description: ("5분 만에 설치하는 원터치 돔 텐트, 방수 3,000mm.", "A pop-up dome tent that pitches in five minutes, 3,000 mm waterproof."),
        options: &[o("Khaki", 259_000, 19_499, 0)] },
    Demo { slug: "cycling-helmet", category: "sports", on_sale: true,
        name: ("자전거 헬멧", "Cycling Helmet"),
        description: ("통풍구 18개의 가벼운 인몰드 자전거 헬멧.", "A light in-mould helmet with 18 vents."),
        options: &[o("M", 69_000, 5_299, 25), o("L", 69_000, 5_299, 25)] },
    Demo { slug: "resistance-band-set", category: "sports", on_sale: true,
        name: ("저항 밴드 5종 세트", "Resistance Band Set of 5"),
        description: ("강도별 라텍스 밴드 5개와 손잡이, 도어 앵커 구성.", "Five latex bands of rising strength with handles and a door anchor."),
        options: &[o("Set of 5", 19_900, 1_499, 180)] },
    Demo { slug: "hiking-backpack-30l", category: "sports", on_sale: true,
        name: ("등산 배낭 30L", "Hiking Backpack 30L"),
        description: ("등판 통기 구조와 레인커버를 갖춘 30L 등산 배낭.", "A 30 L pack with a ventilated back panel and a rain cover."),
        options: &[o("Navy", 89_000, 6_899, 35)] },
    Demo { slug: "golf-balls-12", category: "sports", on_sale: false,
        name: ("골프공 12구", "Golf Balls, 12 Pack"),
        description: ("비거리와 스핀을 모두 잡은 3피스 골프공 (판매 종료).", "Three-piece balls for distance and spin (discontinued)."),
        options: &[o("White", 39_000, 2_999, 60)] },
];

/// The flash-sale coupon the demo opens with.
pub const COUPON_NAME: &str = "오픈런 5,000원 할인 쿠폰";
/// Its English name.
pub const COUPON_NAME_EN: &str = "Open run: 5,000 KRW off";

impl Demo {
    /// The product's image URL.
    pub fn image_url(&self) -> String {
        format!("https://img.jupang.example/p/{}.jpg", self.slug)
    }

    /// Inserts the product and its options and prices; returns how many options it has.
    async fn insert(&self, tx: &mut PgConnection, created_at: DateTime<Utc>) -> sqlx::Result<u64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO products
                 (category, name_ko, name_en, description_ko, description_en, image_url, on_sale, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             RETURNING id",
        )
        .bind(self.category)
        .bind(self.name.0)
        .bind(self.name.1)
        .bind(self.description.0)
        .bind(self.description.1)
        .bind(self.image_url())
        .bind(self.on_sale)
        .bind(created_at)
        .fetch_one(&mut *tx)
        .await?;
        for option in self.options {
            let option_id: i64 = sqlx::query_scalar(
                "INSERT INTO product_options (product_id, name, stock, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $4) RETURNING id",
            )
            .bind(id)
            .bind(option.name)
            .bind(option.stock)
            .bind(created_at)
            .fetch_one(&mut *tx)
            .await?;
            let (currencies, amounts): (Vec<&str>, Vec<i64>) =
                std::iter::once(("KRW", option.krw)).chain(option.usd.map(|usd| ("USD", usd))).unzip();
            sqlx::query(
                "INSERT INTO option_prices (option_id, currency, amount)
                 SELECT $1, c, a FROM unnest($2::text[], $3::bigint[]) AS t (c, a)",
            )
            .bind(option_id)
            .bind(&currencies)
            .bind(&amounts)
            .execute(&mut *tx)
            .await?;
        }
        Ok(self.options.len() as u64)
    }
}

/// What [`ensure_catalog`] created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatalogCreated {
    /// Products created.
    pub products: u64,
    /// Options created with them.
    pub options: u64,
    /// Coupons created (0 or 1).
    pub coupons: u64,
}

/// Makes sure every demo product and the flash-sale coupon exist, inside the caller's
/// transaction. Products already present (same English name) are left untouched, so stock that
/// moved since the last seed is not reset.
pub async fn ensure_catalog(tx: &mut PgConnection) -> sqlx::Result<CatalogCreated> {
    // Two seeds at once would both see a product missing and both insert it.
    sqlx::query("SELECT pg_advisory_xact_lock(72740001)").execute(&mut *tx).await?;
    let names: Vec<&str> = PRODUCTS.iter().map(|p| p.name.1).collect();
    let existing: Vec<String> = sqlx::query_scalar("SELECT name_en FROM products WHERE name_en = ANY($1)")
        .bind(&names)
        .fetch_all(&mut *tx)
        .await?;
    let now = Utc::now();
    let mut created = CatalogCreated::default();
    let count = PRODUCTS.len() as i64;
    for (i, demo) in PRODUCTS.iter().enumerate() {
        if existing.iter().any(|n| n == demo.name.1) {
            continue;
        }
        // One hour apart, in table order, so `sort=newest` shows the table backwards.
        let created_at = now - Duration::hours(count - i as i64);
        created.options += demo.insert(tx, created_at).await?;
        created.products += 1;
    }
    created.coupons = sqlx::query(
        "INSERT INTO coupons (name, name_en, discount_type, discount_value, market, currency, total_quantity,
                              issue_starts_at, issue_ends_at, valid_days)
         SELECT $1, $2, 'FIXED', 5000, 'KR', 'KRW', 1000, now() - interval '1 hour', now() + interval '30 days', 7
         WHERE NOT EXISTS (SELECT 1 FROM coupons WHERE name = $1)",
    )
    .bind(COUPON_NAME)
    .bind(COUPON_NAME_EN)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(created)
}

/// How many demo products there are (for reports and tests).
pub fn demo_product_count() -> usize {
    PRODUCTS.len()
}

/// The demo products in table order (the order [`ensure_catalog`] inserts them in).
pub fn demo_products() -> &'static [Demo] {
    PRODUCTS
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    // Whether the server accepts every row (category slugs, prices, names) and shows every stock
    // status is the server's rule: the API tests check it over HTTP (tests/api/seed.rs).
    #[test]
    fn the_demo_table_is_consistent() {
        let slugs: HashSet<_> = PRODUCTS.iter().map(|p| p.slug).collect();
        let names: HashSet<_> = PRODUCTS.iter().map(|p| p.name.1).collect();
        assert_eq!(slugs.len(), PRODUCTS.len(), "slugs are unique");
        assert_eq!(names.len(), PRODUCTS.len(), "English names identify demo products");
        let categories: HashSet<_> = PRODUCTS.iter().map(|p| p.category).collect();
        assert_eq!(categories.len(), 6);
        for p in PRODUCTS {
            assert!((1..=3).contains(&p.options.len()), "{}", p.slug);
            let opts: HashSet<_> = p.options.iter().map(|o| o.name).collect();
            assert_eq!(opts.len(), p.options.len(), "{}: option names are unique", p.slug);
        }
    }

    #[test]
    fn the_demo_has_kr_only_sold_out_and_off_sale_products() {
        let on_sale: Vec<_> = PRODUCTS.iter().filter(|p| p.on_sale).collect();
        assert!(on_sale.iter().filter(|p| p.options.iter().all(|o| o.stock == 0)).count() >= 3);
        assert!(on_sale.iter().filter(|p| p.options.iter().all(|o| o.usd.is_none())).count() >= 3);
        assert!(PRODUCTS.iter().filter(|p| !p.on_sale).count() >= 3);
    }
}
