-- round_half_even (macros/reporting_currency.sql) on worked cases: ties go to the even neighbour, in both
-- directions and for every minor unit the converted totals use. Any row returned is a wrong rounding.
with cases as (
    select cast(value as decimal(38, 16)) as value, exponent, cast(minor_unit as decimal(18, 4)) as minor_unit,
        cast(expected as decimal(38, 4)) as expected
    from (
        values
            ('0.125', 2, '0.01', '0.12'),
            ('0.135', 2, '0.01', '0.14'),
            ('0.1251', 2, '0.01', '0.13'),
            ('-0.125', 2, '0.01', '-0.12'),
            ('-0.135', 2, '0.01', '-0.14'),
            ('2.5', 0, '1', '2'),
            ('3.5', 0, '1', '4'),
            ('1.0005', 3, '0.001', '1.000'),
            ('1.0015', 3, '0.001', '1.002'),
            ('7.4999999999999999', 0, '1', '7'),
            ('0', 2, '0.01', '0')
    ) as worked (value, exponent, minor_unit, expected)
),

rounded as (
    select *, {{ round_half_even('value', 'exponent', 'minor_unit') }} as got
    from cases
)

select * from rounded where got <> expected
