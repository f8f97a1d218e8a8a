"""The storefront's words in Chinese (the default) and English, picked from Accept-Language, and
amounts formatted by Babel with the currency's own exponent and symbol."""

from __future__ import annotations

import copy
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.numbers import NumberPattern

from xiaopu.kit.lang import DEFAULT as DEFAULT
from xiaopu.kit.lang import Lang as Lang
from xiaopu.kit.lang import negotiate as negotiate
from xiaopu.kit.money import exponent

HTML_LANG = {"zh": "zh-CN", "en": "en"}
_BABEL_LOCALE = {"zh": "zh_CN", "en": "en"}

# key: (Chinese, English). Placeholders are filled by str.format after escaping the values
# (the templates pass them through Jinja's escaping first).
MESSAGES: dict[str, tuple[str, str]] = {
    "shop.search": ("搜索本店商品", "Search this shop"),
    "shop.search_button": ("搜索", "Search"),
    "shop.empty": ("店里暂时没有商品。", "Nothing on sale here yet."),
    "shop.no_results": ("没有找到相关商品。", "No products match your search."),
    "shop.more": ("加载更多", "Load more"),
    "shop.results_for": ("搜索“{query}”", "Results for “{query}”"),
    "shop.all": ("全部商品", "All products"),
    "product.from": ("起", "from"),
    "product.sold_out": ("已售罄", "Sold out"),
    "product.in_stock": ("库存 {count}", "{count} in stock"),
    "product.variant": ("规格", "Option"),
    "product.quantity": ("数量", "Quantity"),
    "product.buy_now": ("立即购买", "Buy now"),
    "product.add_to_cart": ("加入购物车", "Add to cart"),
    "product.added": ("已加入购物车", "Added to cart"),
    "product.shipping": ("运费", "Shipping"),
    "product.free_shipping": ("包邮", "Free shipping"),
    "product.returns": ("签收后 {days} 天内可退货", "Returns within {days} days of delivery"),
    "product.no_returns": ("不支持退货", "No returns"),
    "product.keeper_says": ("掌柜推荐", "The shopkeeper says"),
    "product.ships_from": ("发货方", "Ships from"),
    "product.back_to_shop": ("返回店铺", "Back to the shop"),
    "campaign.price": ("限时价", "Campaign price"),
    "campaign.regular": ("原价", "Regular price"),
    "campaign.starts_in": ("距开抢", "Starts in"),
    "campaign.ends_in": ("距结束", "Ends in"),
    "campaign.before_start": (
        "开抢前按现价 {price} 购买。",
        "Until the start it sells at the regular price, {price}.",
    ),
    "campaign.units_left": ("限时价仅剩 {count} 件", "{count} left at this price"),
    "campaign.gone": (
        "限时价已抢光，现按原价销售。",
        "Sold out at the campaign price: the regular price applies.",
    ),
    "campaign.badge.warm_up": ("预热中", "Coming soon"),
    "campaign.badge.live": ("限时抢购", "On now"),
    "campaign.og.warm_up": (
        "限时价 {price} · {time}后开抢",
        "Campaign price {price} · starts in {time}",
    ),
    "campaign.og.live": (
        "限时价 {price} · 距结束 {time}",
        "Campaign price {price} · ends in {time}",
    ),
    # A countdown's parts (campaigns.service.countdown; static/countdown.js fills in {n}).
    "time.d": ("{n} 天", "{n} d"),
    "time.h": ("{n} 小时", "{n} h"),
    "time.m": ("{n} 分", "{n} min"),
    "time.s": ("{n} 秒", "{n} s"),
    "cart.title": ("购物车", "Cart"),
    "cart.checkout": ("去结算", "Check out"),
    "cart.empty": ("购物车是空的。", "Your cart is empty."),
    "checkout.title": ("确认订单", "Checkout"),
    "checkout.summary": ("订单明细", "Order summary"),
    "checkout.supplier": ("{name} 发货", "Shipped by {name}"),
    "checkout.items": ("商品", "Items"),
    "checkout.shipping": ("运费", "Shipping"),
    "checkout.total": ("合计", "Total"),
    "checkout.address": ("收货信息", "Delivery address"),
    "checkout.recipient": ("收货人", "Recipient"),
    "checkout.phone": ("手机号码", "Mobile phone"),
    "checkout.province": ("省份", "Province"),
    "checkout.city": ("城市", "City"),
    "checkout.district": ("区县（选填）", "District (optional)"),
    "checkout.line1": ("详细地址", "Street address"),
    "checkout.postal_code": ("邮政编码（选填）", "Postal code (optional)"),
    "checkout.note": ("备注（选填）", "Note (optional)"),
    "checkout.place": ("提交订单", "Place order"),
    "checkout.fix": ("请修改标出的内容。", "Please correct the marked fields."),
    "checkout.remove": ("移除", "Remove"),
    "error.required": ("请填写此项。", "Please fill this in."),
    "error.phone": (
        "请输入有效的手机号码，例如 13800138000。",
        "Enter a valid mainland mobile number, e.g. 13800138000.",
    ),
    "error.too_long": ("内容太长了。", "This is too long."),
    "error.invalid": ("格式不正确。", "This does not look right."),
    "error.out_of_stock": ("“{title}”库存不足。", "“{title}” does not have enough stock."),
    "error.unavailable": ("有商品已下架。", "An item is no longer on sale."),
    "error.cart_invalid": ("购物车里的商品有误。", "Something in the cart is not right."),
    "error.try_again": ("出了点问题，请再试一次。", "Something went wrong; please try again."),
    "error.csrf": (
        "页面已过期，请返回刷新后再提交。",
        "This page has expired: go back, reload it and submit again.",
    ),
    "notfound.title": ("页面不存在", "Page not found"),
    "notfound.body": (
        "这家店或这件商品可能已经下架了。",
        "The shop or the product may no longer be on sale.",
    ),
    "order.title": ("我的订单", "Your order"),
    "order.placed": ("下单成功！", "Order placed!"),
    "order.keep_link": (
        "请保存这个链接，在其他设备上也能查看订单：",
        "Keep this link to see your order from another device:",
    ),
    "order.status.pending_payment": ("待付款", "Waiting for payment"),
    "order.status.paid": ("已付款", "Paid"),
    "order.status.expired": ("已过期", "Expired"),
    "order.pay": ("去付款", "Pay now"),
    "order.pay_by": ("请在 {time} 前付款", "Pay by {time}"),
    "order.supplier_order": ("包裹 {n}", "Parcel {n}"),
    "order.carrier": ("快递", "Carrier"),
    "order.tracking": ("运单号", "Tracking number"),
    "order.refunded": ("已退款", "Refunded"),
    "order.return": ("申请退货", "Return items"),
    "order.return_quantity": ("退货数量", "Units to return"),
    "order.return_reason": ("退货原因", "Reason"),
    "order.return_until": ("可退货至 {time}", "Returns close {time}"),
    "order.returns": ("退货", "Returns"),
    "order.return_requested": ("退货申请已提交。", "Your return request was sent."),
    "order.total": ("实付", "Total"),
    "order.deliver_to": ("收货人", "Deliver to"),
    "order.payment_failed": ("付款未成功，可以再试一次。", "The payment did not go through."),
    "order.waiting_callback": (
        "正在确认付款，请稍后刷新。",
        "Confirming your payment: reload in a moment.",
    ),
    "so.pending_payment": ("待付款", "Waiting for payment"),
    "so.paid": ("待发货", "Paid, to be shipped"),
    "so.accepted": ("备货中", "Being prepared"),
    "so.shipped": ("已发货", "Shipped"),
    "so.delivered": ("已签收", "Delivered"),
    "so.completed": ("已完成", "Completed"),
    "so.cancelled": ("已取消", "Cancelled"),
    "so.expired": ("已过期", "Expired"),
    "return.requested": ("审核中", "Under review"),
    "return.approved": ("已同意，退款中", "Approved, refund under way"),
    "return.rejected": ("未通过", "Rejected"),
    "return.refunded": ("已退款", "Refunded"),
    "pay.title": ("付款", "Payment"),
    "pay.sandbox": (
        "开发环境沙箱支付：不会扣任何钱。",
        "Development sandbox: no money moves.",
    ),
    "pay.sandbox_pay": ("确认支付 {amount}", "Pay {amount}"),
    "pay.sandbox_decline": ("模拟支付失败", "Decline"),
    "pay.handover": ("正在前往支付页面…", "Taking you to the payment page…"),
    "pay.continue": ("继续付款", "Continue to pay"),
    "pay.busy": ("正在打开付款，请稍后再试。", "Opening the payment; try again in a moment."),
    "pay.unavailable": ("支付服务暂时不可用，请稍后再试。", "Payment is unavailable; try later."),
}


def text(lang: Lang, key: str, **values: object) -> str:
    zh, en = MESSAGES[key]
    message = en if lang == "en" else zh
    return message.format(**values) if values else message


def duration(lang: Lang, parts: tuple[tuple[int, str], ...]) -> str:
    """A countdown's parts ((2, "h"), (14, "m")) in words: "2 小时 14 分", "2 h 14 min"."""
    return " ".join(text(lang, f"time.{unit}", n=n) for n, unit in parts)


@lru_cache(maxsize=64)
def _pattern(lang: Lang, places: int) -> tuple[Locale, NumberPattern]:
    """The locale's standard currency pattern with exactly `places` decimals."""
    locale = Locale.parse(_BABEL_LOCALE[lang])
    pattern = copy.copy(locale.currency_formats["standard"])
    pattern.frac_prec = (places, places)
    return locale, pattern


def money(amount_minor: int, currency: str, lang: Lang) -> str:
    """Babel's formatting at the currency's ISO 4217 exponent (never /100): 12800 CNY is
    ¥128.00 in Chinese and CN¥128.00 in English, 1280 JPY is ¥1,280, 1234 KWD is KWD 1.234."""
    places = exponent(currency)
    locale, pattern = _pattern(lang, places)
    amount = Decimal(amount_minor).scaleb(-places)
    return str(pattern.apply(amount, locale, currency=currency, currency_digits=False))
